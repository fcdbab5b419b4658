/**
 * Baseline: what a team would write for a pass-through proxy with no auditing: express 5 and
 * http-proxy-middleware 3 with its defaults (`createProxyMiddleware({ target, changeOrigin: true })`). Node's
 * global agent keeps upstream connections alive (the default since Node 19).
 * Run: node build/bench/baselines/hpm-proxy.js --target http://127.0.0.1:PORT [--port N]
 */
import express from 'express';
import type { AddressInfo } from 'node:net';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { argValue as arg } from '../common';

const target = arg('target') ?? 'http://127.0.0.1:1';
const app = express();
app.disable('x-powered-by');
app.use(createProxyMiddleware({ target, changeOrigin: true }));

const server = app.listen(Number(arg('port') ?? '0'), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ msg: 'hpm proxy listening', url: `http://127.0.0.1:${port}` })}\n`);
});
server.keepAliveTimeout = 65_000;
server.requestTimeout = 0;
const stop = (): void => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
