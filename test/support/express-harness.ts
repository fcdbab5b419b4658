/**
 * The audit as Express middleware, on a real Express 5 app on a real port: the app's own routes, the audit
 * middleware mounted under a path, and behind it either http-proxy-middleware 3 with a keep-alive agent (what a
 * careful team writes) or the gateway's own createCodeEngineProxy; in front of the fake Code Engine.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import express from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { createAuditMiddleware, createCodeEngineProxy, loadConfig, upstreamUrlOf } from '../../src/index';
import type { AuditMiddleware, CodeEngineProxy } from '../../src/index';
import { createLogger } from '../../src/log';
import { startFakeCodeEngine } from './fake-code-engine';
import { harnessSettings, journalReaders, logCapture, startHarness, type AuditHarness } from './harness';
import { closeNow, listenOnLoopback } from './listen';

export type ProxyKind = 'hpm' | 'ce-proxy';

export const FRONT_ENDS = ['gateway', 'express+hpm', 'express+ce-proxy'] as const;
export type FrontEnd = (typeof FRONT_ENDS)[number];

export interface ExpressHarness extends AuditHarness {
  audit: AuditMiddleware;
  proxy: CodeEngineProxy | undefined;
  server: Server;
  /** Where the audit is mounted ('' at the root). */
  mount: string;
  /** Base URL of the app: `url` is this plus the mount path. */
  appUrl: string;
  /** Prometheus text of the audit. */
  metrics: () => Promise<string>;
}

export interface ExpressHarnessOptions {
  proxy: ProxyKind;
  /** The mount path of the audit and the proxy ('/ce' by default; '' for the root). */
  mount?: string;
  /** attach(server) the audit (default true). */
  attach?: boolean;
  /** Mounts the audit and the proxy (`forward`) itself, instead of app.use(mount, audit, forward). */
  build?: (app: express.Express, audit: AuditMiddleware, forward: express.RequestHandler) => void;
}

/** The value of a counter or gauge in Prometheus text, summed over the lines that carry `labels`. */
export function metricValue(text: string, name: string, labels = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if ((line.startsWith(`${name}{`) || line.startsWith(`${name} `)) && line.includes(labels))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export async function startExpressHarness(env: Record<string, string>, options: ExpressHarnessOptions): Promise<ExpressHarness> {
  const upstream = await startFakeCodeEngine();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'ce-audit-mw-'));
  const { journalDir, spoolDir, settings } = harnessSettings(upstream.url, dataDir);
  const config = loadConfig({
    ...settings,
    // The harness reads the journal once delivery caught up; the gateway's harness flushes delivery instead.
    BATCH_MAX_WAIT_MS: '20',
    ...env,
  });
  const captured = logCapture();
  const audit = await createAuditMiddleware(config, { logger: createLogger(config.logLevel, captured.stream) });
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const proxy = options.proxy === 'ce-proxy' ? createCodeEngineProxy(config) : undefined;
  // The settings may name an upstream of the test's own (then the fake Code Engine gets no calls).
  const api = config.regions.get(config.region)?.upstreams.api;
  const target = api ? `${api.origin}${api.basePath}` : upstream.url;
  const forward =
    proxy ??
    createProxyMiddleware({
      target,
      changeOrigin: true,
      agent,
      // The region's API or Kubernetes upstream, as the audit matched the call.
      router: (req) => upstreamUrlOf(req),
    });
  const mount = options.mount ?? '/ce';
  const app = express();
  app.disable('x-powered-by');
  // The app's own routes, before and after the mount: never audited, never forwarded.
  app.get('/app/health', (_req, res) => {
    res.json({ ok: true });
  });
  if (options.build) options.build(app, audit, forward as express.RequestHandler);
  else if (mount === '') app.use(audit, forward);
  else app.use(mount, audit, forward);
  app.use((_req, res) => {
    res.status(404).json({ app: 'no such route' });
  });
  // As the README tells an app to: its server made with the audit's limits, then attached.
  const server = createServer(audit.serverOptions, app);
  if (options.attach ?? true) audit.attach(server, { path: mount || '/', ...(proxy ? { proxy } : {}) });
  const port = await listenOnLoopback(server);
  const appUrl = `http://127.0.0.1:${port}`;
  const metrics = (): Promise<string> => audit.metrics();
  const caughtUp = async (): Promise<void> => {
    // Delivery is asynchronous (spool first): wait (bounded) until the journal sink has every recorded event.
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const text = await metrics();
      const recorded = metricValue(text, 'ce_audit_events_recorded_total');
      if (metricValue(text, 'ce_audit_events_delivered_total', 'sink="file"') >= recorded) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return {
    upstream,
    audit,
    proxy,
    server,
    mount,
    appUrl,
    url: appUrl + mount,
    journalDir,
    spoolDir,
    logs: captured.text,
    metrics,
    ...journalReaders(journalDir, caughtUp),
    close: async () => {
      await closeNow(server);
      agent.destroy();
      await proxy?.close();
      await audit.close();
      await upstream.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A harness for one of the front ends, so one test runs against each. */
export async function startFrontEnd(frontEnd: FrontEnd, env: Record<string, string> = {}, mount?: string): Promise<AuditHarness> {
  if (frontEnd === 'gateway') return startHarness(env);
  return startExpressHarness(env, { proxy: frontEnd === 'express+hpm' ? 'hpm' : 'ce-proxy', ...(mount === undefined ? {} : { mount }) });
}
