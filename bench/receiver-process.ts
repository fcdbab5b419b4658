/**
 * The project's Activity Tracker receiver (src/receiver, the same code as `node dist/receiver/main.js`) as its
 * own process, plus a small control listener the benchmark needs and main.js does not have:
 *   GET  /stats              {count, firstAt, lastAt, firstBatch}: events accepted since the last mark, when
 *                            the first and the last of them arrived (epoch ms), how many came in the first request
 *   POST /mark               starts counting again
 *   POST /behave?mode=down   the ingest API drops every connection (like an outage); mode=ok brings it back
 * Events are counted and then forgotten (the receiver keeps every event in memory, and a benchmark sends
 * millions), so this process stays small. Both listeners bind 127.0.0.1.
 * Run: node build/bench/receiver-process.js --key <ingestion key> [--region us-south]
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startReceiver } from '../src/receiver/receiver';
import { argValue } from './common';

const arg = (name: string, fallback: string): string => argValue(name) ?? fallback;

async function main(): Promise<void> {
  const region = arg('region', 'us-south');
  const receiver = await startReceiver({ host: '127.0.0.1', logdnaKeys: { [region]: arg('key', 'bench-key') } });
  let down = false;
  let count = 0;
  let firstAt: number | undefined;
  let lastAt: number | undefined;
  let firstBatch = 0;

  const fold = (): void => {
    const events = receiver.events();
    if (events.length === 0) return;
    count += events.length;
    for (const e of events) {
      // One delivery request's events share one receivedAt: the first of them are the first batch.
      if (firstAt === undefined) firstAt = e.receivedAt;
      if (e.receivedAt === firstAt) firstBatch++;
      if (lastAt === undefined || e.receivedAt > lastAt) lastAt = e.receivedAt;
    }
    receiver.reset();
    if (down) receiver.behave('*', { mode: 'down' });
  };
  const folding = setInterval(fold, 250);

  const control = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://control.invalid');
    req.resume();
    const reply = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
    };
    if (req.method === 'GET' && url.pathname === '/stats') {
      fold();
      return reply(200, { count, firstAt: firstAt ?? null, lastAt: lastAt ?? null, firstBatch, down });
    }
    if (req.method === 'POST' && url.pathname === '/mark') {
      fold();
      count = 0;
      firstAt = undefined;
      lastAt = undefined;
      firstBatch = 0;
      return reply(200, { ok: true });
    }
    if (req.method === 'POST' && url.pathname === '/behave') {
      down = url.searchParams.get('mode') === 'down';
      receiver.behave('*', down ? { mode: 'down' } : { mode: 'ok' });
      return reply(200, { down });
    }
    reply(404, { error: 'not found' });
  });
  await new Promise<void>((r) => control.listen(0, '127.0.0.1', r));
  const controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}`;
  process.stdout.write(
    `${JSON.stringify({ msg: 'receiver listening', url: receiver.url, logdnaUrlTemplate: receiver.logdnaUrlTemplate, control: controlUrl })}\n`,
  );

  const stop = (): void => {
    clearInterval(folding);
    control.close();
    control.closeAllConnections();
    void receiver.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`receiver: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
