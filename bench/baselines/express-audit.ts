/**
 * The audit middleware in an Express 5 app, as the README shows it: `app.use(audit, proxy)`, configured by the
 * same environment as the gateway (sinks, spool, fsync), with the proxy behind it either
 * - `--proxy hpm`: http-proxy-middleware 3 with a keep-alive agent (the keep-alive baseline with the audit in front),
 * - `--proxy ce`: the gateway's own createCodeEngineProxy.
 * GET /metrics serves the audit's metrics (the harness waits on them for delivery to catch up, as for the gateway).
 * Run: node build/bench/baselines/express-audit.js --proxy hpm|ce [--port N], with the gateway's settings in the env.
 */
import { Agent, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { createAuditMiddleware, createCodeEngineProxy, loadConfig } from '../../src/index';
import { argValue as arg } from '../common';

async function main(): Promise<void> {
  const kind = arg('proxy') ?? 'hpm';
  if (kind !== 'hpm' && kind !== 'ce') throw new Error(`--proxy takes hpm or ce, got ${kind}`);
  const config = loadConfig(process.env);
  const audit = await createAuditMiddleware(config);
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const api = config.regions.get(config.region)?.upstreams.api;
  const proxy =
    kind === 'ce'
      ? createCodeEngineProxy(config)
      : // The keep-alive baseline's proxy, as it is (the benchmark's upstream serves every path on one host).
        createProxyMiddleware({ target: `${api?.origin}${api?.basePath}`, changeOrigin: true, agent });
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', async (_req, res) => {
    res.type(audit.metricsContentType).send(await audit.metrics());
  });
  app.use(audit, proxy);
  const server = createServer(audit.serverOptions, app);
  audit.attach(server, kind === 'ce' ? { proxy: proxy as ReturnType<typeof createCodeEngineProxy> } : {});
  server.listen(Number(arg('port') ?? '0'), '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    const url = `http://127.0.0.1:${port}`;
    process.stdout.write(`${JSON.stringify({ msg: 'express audit listening', url, proxy: kind })}\n`);
  });
  const stop = (): void => {
    server.close();
    server.closeAllConnections();
    agent.destroy();
    const closing = 'close' in proxy && typeof proxy.close === 'function' ? proxy.close() : Promise.resolve();
    void Promise.all([closing, audit.close()]).then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`express-audit: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
