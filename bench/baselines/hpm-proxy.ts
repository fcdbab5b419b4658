/**
 * Baseline: what a team would write for a pass-through proxy with no auditing: express 5 and
 * http-proxy-middleware 3, `createProxyMiddleware({ target, changeOrigin: true })`.
 * - `--agent none` (the default, and http-proxy's): no agent, so every call opens a new upstream connection and
 *   sends `Connection: close` upstream.
 * - `--agent keep-alive`: what a careful team adds, an http.Agent with keepAlive (256 sockets, as the gateway's
 *   pool): upstream connections are reused.
 * Run: node build/bench/baselines/hpm-proxy.js --target http://127.0.0.1:PORT [--agent none|keep-alive] [--port N]
 */
import { Agent } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { argValue as arg } from '../common';

const target = arg('target') ?? 'http://127.0.0.1:1';
const agentKind = arg('agent') ?? 'none';
if (agentKind !== 'none' && agentKind !== 'keep-alive') throw new Error(`--agent takes none or keep-alive, got ${agentKind}`);
const agent = agentKind === 'keep-alive' ? new Agent({ keepAlive: true, maxSockets: 256 }) : undefined;
const app = express();
app.disable('x-powered-by');
app.use(createProxyMiddleware({ target, changeOrigin: true, ...(agent ? { agent } : {}) }));

const server = app.listen(Number(arg('port') ?? '0'), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ msg: 'hpm proxy listening', url: `http://127.0.0.1:${port}`, agent: agentKind })}\n`);
});
server.keepAliveTimeout = 65_000;
server.requestTimeout = 0;
const stop = (): void => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  agent?.destroy();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
