/**
 * 100,000 malformed or hostile requests (FUZZ_REQUESTS to change; FUZZ_SEED to replay) against the gateway as
 * operators run it (its own process). The process never crashes, its memory stays bounded, every request
 * either gets a clear 4xx/5xx or is proxied, and every proxied request has exactly one event whose method,
 * path and action match what the upstream received. No secret planted in a request reaches a written byte.
 */
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseRequestTarget } from '../../src/http/request-target';
import { loadCatalog } from '../../src/routing/catalog';
import type { AuditEvent } from '../../src/types';
import { generate, type FuzzRequest } from '../support/fuzz';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process';
import { readJournal } from '../support/harness';

const COUNT = Number(process.env.FUZZ_REQUESTS ?? 100_000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261125);
const CONCURRENCY = 32;
const MAX_PEAK_RSS = 300 * 1024 * 1024;

interface Received {
  method: string;
  url: string;
}

let upstream: Server;
const received = new Map<string, Received>();
let gw: GatewayProcess;
let dir: string;

beforeAll(async () => {
  // A minimal upstream: it records, per correlation id, what it received once the request was whole.
  upstream = createServer((req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      const id = req.headers['x-correlation-id'];
      if (typeof id === 'string') received.set(id, { method: req.method ?? '', url: req.url ?? '' });
      const body = '{"ok":true}';
      res
        .writeHead(200, { 'content-type': 'application/json', 'content-length': body.length })
        .end(req.method === 'HEAD' ? undefined : body);
    });
  });
  upstream.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  dir = await mkdtemp(path.join(tmpdir(), 'ce-audit-fuzz-'));
  gw = await spawnGateway({
    PORT: '0',
    ADMIN_PORT: '0',
    CE_API_URL: url,
    CE_KUBE_API_URL: url,
    AT_FILE_DIR: path.join(dir, 'audit'),
    SPOOL_DIR: path.join(dir, 'spool'),
    AUDIT_RESPONSE_DATA: 'none',
    // Durability is tested elsewhere; here fsync would only slow 100,000 requests down.
    SPOOL_FSYNC: 'false',
    AT_FILE_FSYNC: 'false',
    ACTION_CATALOG: 'current',
    HEADERS_TIMEOUT_MS: '2000',
    REQUEST_TIMEOUT_MS: '3000',
    LOG_LEVEL: 'info',
  });
});
afterAll(async () => {
  gw.kill('SIGKILL');
  await gw.exited;
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

interface Outcome {
  request: FuzzRequest;
  status: number;
  transactionId: string | undefined;
  ms: number;
}

/** Send one request on a socket and read one complete response (interim 1xx skipped). */
function exchange(socket: Socket, request: FuzzRequest): Promise<{ status: number; transactionId: string | undefined; reusable: boolean }> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (status: number, transactionId: string | undefined, reusable: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve({ status, transactionId, reusable });
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
        if (status >= 100 && status < 200) {
          buf = buf.subarray(end + 4);
          continue;
        }
        const tx = /\r\nx-transaction-id: *([^\r\n]+)/i.exec(head)?.[1];
        const close = /\r\nconnection: *close/i.test(head);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        const noBody = request.method === 'HEAD' || status === 204 || status === 304;
        if (noBody || buf.length - end - 4 >= length) finish(status, tx, !close && request.kind === 'valid');
        return;
      }
    };
    const onClose = (): void => finish(0, undefined, false);
    const timer = setTimeout(() => finish(0, undefined, false), 10_000);
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.write(request.bytes);
    if (request.truncated) socket.end();
  });
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', () => undefined);
  });
}

test(`${COUNT} malformed or hostile requests`, async () => {
  const requests = generate(SEED, COUNT);
  const port = Number(new URL(gw.proxyUrl).port);
  const outcomes: Outcome[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    let socket: Socket | undefined;
    while (next < requests.length) {
      const request = requests[next++] as FuzzRequest;
      socket ??= await open(port);
      const t0 = Date.now();
      const r = await exchange(socket, request);
      outcomes.push({ request, status: r.status, transactionId: r.transactionId, ms: Date.now() - t0 });
      if (!r.reusable) {
        socket.destroy();
        socket = undefined;
      }
    }
    socket?.destroy();
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = (Date.now() - started) / 1000;

  // The process is alive and its memory stayed bounded.
  expect(gw.child.exitCode).toBeNull();
  const peak = gw.peakRss();
  expect(peak).toBeLessThan(MAX_PEAK_RSS);

  // Every complete request got an answer: either proxied (200 from the upstream) or a gateway 4xx/5xx.
  const unanswered = outcomes.filter((o) => !o.request.truncated && o.status === 0);
  expect(unanswered.map((o) => `${o.request.kind} ${JSON.stringify(o.request.bytes.subarray(0, 120).toString('latin1'))}`)).toEqual([]);
  const odd = outcomes.filter((o) => o.status !== 0 && o.status !== 200 && (o.status < 400 || o.status > 599));
  expect(odd.map((o) => o.status)).toEqual([]);
  for (const o of outcomes.filter((x) => x.status === 200)) expect(received.has(o.transactionId ?? '')).toBe(true);

  // Every proxied request has exactly one event, naming what the upstream received.
  const ready = await fetch(`${gw.adminUrl}/metrics`).then((r) => r.text());
  expect(ready).toContain('ce_audit_events_recorded_total');
  const deadline = Date.now() + 60_000;
  let events: AuditEvent[] = [];
  let raw = '';
  while (Date.now() < deadline) {
    ({ events, raw } = await readJournal(path.join(dir, 'audit')));
    const ids = new Set(events.map((e) => e.transactionID));
    if ([...received.keys()].every((id) => ids.has(id))) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const byTx = new Map<string, AuditEvent[]>();
  for (const e of events) byTx.set(e.transactionID, [...(byTx.get(e.transactionID) ?? []), e]);
  const catalog = loadCatalog('current');
  const mismatches: string[] = [];
  for (const [tx, got] of received) {
    const mine = byTx.get(tx) ?? [];
    if (mine.length !== 1) {
      mismatches.push(`${tx}: ${mine.length} events`);
      continue;
    }
    const e = mine[0] as AuditEvent;
    const upstreamPath = got.url.split('?')[0] as string;
    const action = catalog.match(got.method, parseRequestTarget(got.url).segments).operation.actions.current;
    if (e.requestData.method !== got.method || e.requestData.path !== upstreamPath || e.action !== action) {
      mismatches.push(
        `${tx}: upstream ${got.method} ${upstreamPath} (${action}), event ${e.requestData.method} ${e.requestData.path} (${e.action})`,
      );
    }
  }
  expect(mismatches.slice(0, 20)).toEqual([]);
  expect(received.size).toBeGreaterThan(COUNT * 0.2);

  // No planted secret in the journal or the gateway's output.
  for (const canary of ['CANARY-fuzz-env', 'CANARY-fuzz-secret', 'CANARY-fuzz-patch', 'CANARY-fuzz-cookie', 'dXNlcjpwYXNz']) {
    expect({ canary, journal: raw.includes(canary), logs: gw.output().includes(canary) }).toEqual({ canary, journal: false, logs: false });
  }
  const slow = outcomes.filter((o) => o.ms > 500);
  if (process.env.FUZZ_DEBUG) {
    for (const o of slow.slice(0, 10))
      process.stdout.write(`slow ${o.ms} ms ${o.status} ${JSON.stringify(o.request.bytes.subarray(0, 300).toString('latin1'))}\n`);
  }
  const kinds = new Map<string, number>();
  for (const o of outcomes) kinds.set(`${o.request.kind}:${o.status}`, (kinds.get(`${o.request.kind}:${o.status}`) ?? 0) + 1);
  process.stdout.write(
    `fuzz: ${COUNT} requests in ${seconds.toFixed(1)} s (${Math.round(COUNT / seconds)}/s), ${received.size} proxied, ${events.length} events, peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB\n` +
      `fuzz outcomes: ${[...kinds]
        .sort()
        .map(([k, n]) => `${k}=${n}`)
        .join(' ')}\n`,
  );
}, 600_000);
