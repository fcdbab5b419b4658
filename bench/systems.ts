/**
 * The processes of a benchmark run: the upstream, the receiver, the gateway as built (`node dist/cli/gateway.js`),
 * and the baselines. Each is its own child process on 127.0.0.1.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { childPids, freePort, runToEnd, sleep, startChild, type Child } from './common';

export const NGINX = '/usr/sbin/nginx';
export const INGESTION_KEY = 'bench-ingestion-key-0123456789abcdef';

export type SystemId = 'direct' | 'undici' | 'hpm' | 'hpm-ka' | 'mw-hpm' | 'mw-ce' | 'nginx' | 'gateway' | 'gateway-unchained';

export const SYSTEM_LABELS: Record<SystemId, string> = {
  direct: 'direct to the upstream',
  undici: 'bare undici proxy',
  hpm: 'express 5 + http-proxy-middleware 3, no agent (a new upstream connection per call)',
  'hpm-ka': 'express 5 + http-proxy-middleware 3, keep-alive agent',
  'mw-hpm': 'express 5 + createAuditMiddleware + http-proxy-middleware 3 (keep-alive)',
  'mw-ce': 'express 5 + createAuditMiddleware + createCodeEngineProxy',
  nginx: 'nginx proxy_pass',
  gateway: 'ce-audit-gateway',
  'gateway-unchained': 'ce-audit-gateway without the audit chain and checkpoints',
};

/** Systems that audit: the harness waits for their delivery to catch up before each measurement. */
export const AUDITING: ReadonlySet<SystemId> = new Set(['gateway', 'mw-hpm', 'mw-ce']);

export interface System {
  id: SystemId;
  url: string;
  /** The processes whose CPU time and memory are this system's (for direct: the upstream itself). */
  pids: () => number[];
}

const node = process.execPath;
const buildFile = (root: string, ...parts: string[]): string => path.join(root, 'build', 'bench', ...parts);

export async function startUpstream(root: string): Promise<{ child: Child; url: string; bytes1k: number; bytes64k: number }> {
  const child = await startChild('upstream', node, [buildFile(root, 'upstream.js')]);
  return { child, url: String(child.ready.url), bytes1k: Number(child.ready.bytes1k), bytes64k: Number(child.ready.bytes64k) };
}

export interface ReceiverProcess {
  child: Child;
  logdnaUrlTemplate: string;
  control: string;
}

export function receiverAvailable(root: string): boolean {
  return existsSync(path.join(root, 'build', 'src', 'receiver', 'receiver.js'));
}

export async function startReceiverProcess(root: string): Promise<ReceiverProcess> {
  const child = await startChild('receiver', node, [buildFile(root, 'receiver-process.js'), '--key', INGESTION_KEY]);
  return { child, logdnaUrlTemplate: String(child.ready.logdnaUrlTemplate), control: String(child.ready.control) };
}

export interface ReceiverStats {
  count: number;
  firstAt: number | null;
  lastAt: number | null;
  /** Events that arrived in the first delivery (same millisecond as the first one). */
  firstBatch: number;
}

export async function receiverStats(r: ReceiverProcess): Promise<ReceiverStats> {
  const res = await fetch(`${r.control}/stats`);
  return (await res.json()) as ReceiverStats;
}

export async function receiverControl(r: ReceiverProcess, what: 'mark' | 'down' | 'ok'): Promise<void> {
  const url = what === 'mark' ? `${r.control}/mark` : `${r.control}/behave?mode=${what}`;
  const res = await fetch(url, { method: 'POST' });
  await res.arrayBuffer();
}

export async function startUndiciProxy(root: string, target: string): Promise<Child> {
  return startChild('undici proxy', node, [buildFile(root, 'baselines', 'undici-proxy.js'), '--target', target]);
}

export async function startHpmProxy(root: string, target: string, agent: 'none' | 'keep-alive'): Promise<Child> {
  return startChild(`hpm proxy (${agent})`, node, [buildFile(root, 'baselines', 'hpm-proxy.js'), '--target', target, '--agent', agent]);
}

export async function nginxVersion(): Promise<string | undefined> {
  if (!existsSync(NGINX)) return undefined;
  try {
    // nginx -v prints on stderr; runToEnd keeps stdout, so ask for the version through -V's first line instead.
    const out = await runToEnd('/bin/sh', ['-c', `${NGINX} -v 2>&1`], { timeoutMs: 5000 });
    return out.trim().replace(/^nginx version: /, '');
  } catch {
    return undefined;
  }
}

export async function startNginx(root: string, dir: string, upstreamUrl: string): Promise<{ child: Child; url: string; conf: string }> {
  await mkdir(dir, { recursive: true });
  // Workers run as nobody when nginx starts as root: they must reach the temp paths under this directory.
  await chmod(dir, 0o755);
  for (let d = path.dirname(dir); d.startsWith(path.sep) && d.length > 1; d = path.dirname(d)) {
    if (path.basename(d).startsWith('ce-audit-bench-')) await chmod(d, 0o755);
  }
  const port = await freePort();
  const upstreamPort = new URL(upstreamUrl).port;
  const template = await readFile(path.join(root, 'bench', 'baselines', 'nginx.conf.template'), 'utf8');
  const conf = template.replaceAll('@@DIR@@', dir).replaceAll('@@PORT@@', String(port)).replaceAll('@@UPSTREAM_PORT@@', upstreamPort);
  const confFile = path.join(dir, 'nginx.conf');
  await writeFile(confFile, conf);
  const child = await startChild('nginx', NGINX, ['-p', `${dir}/`, '-c', confFile, '-e', path.join(dir, 'error.log')], {
    readyPort: port,
  });
  return { child, url: `http://127.0.0.1:${port}`, conf: confFile };
}

/** nginx's master and its worker. */
export function nginxPids(master: number): number[] {
  return [master, ...childPids(master)];
}

export interface GatewayProcess {
  child: Child;
  url: string;
  admin: string;
  sinks: string[];
}

export interface GatewayStart {
  root: string;
  dir: string;
  upstreamUrl: string;
  receiver: ReceiverProcess | undefined;
  nodeArgs?: string[];
  /** Settings that override the harness's (diagnostics, e.g. SPOOL_FSYNC=false). */
  extraEnv?: Record<string, string>;
  /** Another entry point than dist/cli/gateway.js (the gateway without its audit chain: build/bench/gateway-unchained.js). */
  entry?: string;
}

/**
 * What the image's environment sets for the runtime rather than for the gateway (glibc's malloc tuning), read from
 * the Dockerfile so that the gateway is measured as shipped (`npm start` has the same default; a test checks that).
 */
export async function imageRuntimeEnv(root: string): Promise<Record<string, string>> {
  const file = path.join(root, 'Dockerfile');
  if (!existsSync(file)) return {};
  const env: Record<string, string> = {};
  for (const line of (await readFile(file, 'utf8')).replace(/\\\n\s*/g, ' ').split('\n')) {
    if (!line.startsWith('ENV ')) continue;
    for (const m of line.matchAll(/\b(MALLOC_[A-Z_]+)=(\S+)/g)) env[m[1] as string] = m[2] as string;
  }
  return env;
}

/** The settings every auditing system runs with: the same sinks, spool, fsync and retry settings. */
async function auditEnv(s: GatewayStart, sinks: string[]): Promise<Record<string, string>> {
  await mkdir(s.dir, { recursive: true });
  const env: Record<string, string> = {
    ...(await imageRuntimeEnv(s.root)),
    PORT: '0',
    ADMIN_PORT: '0',
    HOST: '127.0.0.1',
    CE_REGION: 'us-south',
    CE_API_URL: s.upstreamUrl,
    CE_KUBE_API_URL: s.upstreamUrl,
    AT_SINK: sinks.join(','),
    AT_FILE_DIR: path.join(s.dir, 'audit'),
    SPOOL_DIR: path.join(s.dir, 'spool'),
    SPOOL_FSYNC: 'true',
    AT_FILE_FSYNC: 'true',
    // A receiver that comes back is used within a second (the default backoff grows to 30 s).
    RETRY_BASE_MS: '100',
    RETRY_MAX_MS: '1000',
    // The 'listening' line with the ports is logged at info.
    LOG_LEVEL: 'info',
  };
  if (s.receiver) {
    env.AT_LOGDNA_URL = s.receiver.logdnaUrlTemplate;
    env.AT_INGESTION_KEY = INGESTION_KEY;
    env.AT_LOGDNA_HOSTNAME = 'bench';
  }
  return { ...env, ...s.extraEnv };
}

/** The gateway as operators run it (`npm start` = build, then `node dist/cli/gateway.js`), configured by env. */
export async function startGateway(s: GatewayStart): Promise<GatewayProcess> {
  const sinks = s.receiver ? ['file', 'logdna'] : ['file'];
  const entry = s.entry ?? path.join(s.root, 'dist', 'cli', 'gateway.js');
  const child = await startChild('gateway', node, [...(s.nodeArgs ?? []), entry], {
    env: await auditEnv(s, sinks),
    cwd: s.dir,
    isReady: (line) => line.includes('"ce-audit-gateway listening"'),
    timeoutMs: 30_000,
  });
  return { child, url: String(child.ready.proxy), admin: String(child.ready.admin), sinks };
}

/**
 * The audit middleware in an Express app (bench/baselines/express-audit.ts) with the gateway's settings, in front
 * of http-proxy-middleware with a keep-alive agent or of createCodeEngineProxy. Its /metrics is its admin.
 */
export async function startExpressAudit(s: GatewayStart, proxy: 'hpm' | 'ce'): Promise<GatewayProcess> {
  const sinks = s.receiver ? ['file', 'logdna'] : ['file'];
  const child = await startChild(
    `express audit (${proxy})`,
    node,
    [...(s.nodeArgs ?? []), buildFile(s.root, 'baselines', 'express-audit.js'), '--proxy', proxy],
    {
      env: await auditEnv(s, sinks),
      cwd: s.dir,
      isReady: (line) => line.includes('"express audit listening"'),
      timeoutMs: 30_000,
    },
  );
  return { child, url: String(child.ready.url), admin: String(child.ready.url), sinks };
}

export interface GatewayCounts {
  recorded: number;
  delivered: Record<string, number>;
}

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

export async function gatewayCounts(g: GatewayProcess): Promise<GatewayCounts> {
  const res = await fetch(`${g.admin}/metrics`);
  const text = await res.text();
  const delivered: Record<string, number> = {};
  for (const sink of g.sinks) delivered[sink] = metric(text, 'ce_audit_events_delivered_total', `sink="${sink}"`);
  return { recorded: metric(text, 'ce_audit_events_recorded_total', 'region="us-south"'), delivered };
}

/**
 * Waits until every sink has every event recorded so far, so that no delivery left over from one measurement
 * takes CPU from the next one. Returns the milliseconds waited (or -1 when it gave up after maxMs).
 */
export async function waitDelivered(g: GatewayProcess, maxMs: number): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < maxMs) {
    const c = await gatewayCounts(g);
    if (Object.values(c.delivered).every((d) => d >= c.recorded)) return Date.now() - start;
    await sleep(50);
  }
  return -1;
}
