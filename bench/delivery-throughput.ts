/**
 * Delivery throughput: how many events per second the gateway delivers into Activity Tracker (the project's
 * receiver, LogDNA ingest API), with the spool fsynced, measured two ways on this machine:
 *  - drain: N calls are made while the receiver is down (every event waits in the spool), then the receiver
 *    comes back and the time to deliver the whole backlog is measured;
 *  - live: N calls at a fixed concurrency with the receiver up, until the last event is delivered.
 * The gateway runs as its own process (node dist/cli/gateway.js); this process runs the upstream, the receiver and
 * the load. Run: npm run bench:delivery [-- --events 20000]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { startReceiver } from '../src/receiver/receiver';
import { fireCalls, until } from '../test/support/load';
import { argValue } from './common';

const KEY = 'bench-ingestion-key-0123456789';
const arg = (name: string, fallback: number): number => Number(argValue(name) ?? fallback);

async function main(): Promise<void> {
  const events = arg('events', 20_000);
  const concurrency = arg('concurrency', 64);
  const root = path.resolve(__dirname, '..', '..');
  const dir = await mkdtemp(path.join(tmpdir(), 'ce-audit-bench-'));
  // A Code Engine-like upstream answering a small JSON body (kept minimal so it does not compete for CPU).
  const body = JSON.stringify({ function_runtimes: [{ id: 'nodejs-20', name: 'Node.js 20', family: 'nodejs', default: true }] });
  const upstream = createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body),
  );
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const receiver = await startReceiver({ logdnaKeys: { 'us-south': KEY } });

  const child = spawn(process.execPath, [path.join(root, 'dist', 'cli', 'gateway.js')], {
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      ADMIN_PORT: '0',
      CE_API_URL: upstreamUrl,
      CE_KUBE_API_URL: upstreamUrl,
      AT_SINK: 'logdna',
      AT_LOGDNA_URL: receiver.logdnaUrlTemplate,
      AT_INGESTION_KEY: KEY,
      SPOOL_DIR: path.join(dir, 'spool'),
      SPOOL_FSYNC: 'true',
      RETRY_BASE_MS: '100',
      RETRY_MAX_MS: '500',
      LOG_LEVEL: 'info',
      // Delivery and audit settings of the caller's environment are passed on, to compare them in one run.
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(BATCH_|DELIVERY_|AUDIT_|RETRY_|HEAP_)/.test(k))),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const proxyUrl = await new Promise<string>((resolve) => {
    let text = '';
    child.stdout.on('data', (c: Buffer) => {
      text += c.toString();
      const line = text.split('\n').find((l) => l.includes('listening'));
      if (line) resolve((JSON.parse(line) as { proxy: string }).proxy);
    });
  });

  const calls = (prefix: string) =>
    Array.from({ length: events }, (_, i) => ({ path: '/v2/function_runtimes', transactionId: `${prefix}-${i}` }));

  // Drain: a backlog of `events` in the spool, then the receiver comes back.
  receiver.behave('*', { mode: 'down' });
  let t = Date.now();
  await fireCalls(proxyUrl, calls('drain'), { concurrency });
  const spoolSeconds = (Date.now() - t) / 1000;
  receiver.behave('*', { mode: 'ok' });
  t = Date.now();
  await until(() => receiver.events().length >= events, 300_000, 10);
  const drainSeconds = (Date.now() - t) / 1000;
  receiver.reset();

  // Live: calls and delivery at the same time.
  t = Date.now();
  await fireCalls(proxyUrl, calls('live'), { concurrency });
  const callsSeconds = (Date.now() - t) / 1000;
  await until(() => receiver.events().length >= events, 300_000, 10);
  const liveSeconds = (Date.now() - t) / 1000;

  const rate = (n: number, s: number): string => `${Math.round(n / s).toLocaleString('en-US')}/s`;
  const lines = [
    `machine: ${cpus()[0]?.model ?? 'unknown cpu'} x ${cpus().length}, node ${process.version}; spool fsync on; LogDNA sink into the local receiver`,
    `events: ${events}, client concurrency: ${concurrency}`,
    `calls while the receiver was down (events spooled): ${rate(events, spoolSeconds)}`,
    `drain of the ${events}-event backlog into the receiver: ${drainSeconds.toFixed(2)} s = ${rate(events, drainSeconds)}`,
    `live: ${rate(events, callsSeconds)} calls, all ${events} events delivered after ${liveSeconds.toFixed(2)} s = ${rate(events, liveSeconds)}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);

  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await receiver.close();
  await new Promise<void>((r) => upstream.close(() => r()));
  await rm(dir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
