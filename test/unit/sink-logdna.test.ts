/**
 * LogdnaSink against the real receiver on 127.0.0.1: delivery, the status mapping (207, 401, 413, 429, 5xx),
 * timeouts, connection failures and gzip.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { secretScrubber } from '../../src/delivery/dead-letter';
import { LogdnaSink, LOGDNA_MAX_BODY_BYTES } from '../../src/delivery/sinks/logdna-sink';
import type { SendResult } from '../../src/delivery/sinks/sink';
import { startReceiver, type Receiver } from '../../src/receiver/receiver';
import type { SpoolRecord } from '../../src/spool/types';
import type { Region, Severity } from '../../src/types';

const US_KEY = 'logdna-key-us-south-0c9d7e51';
const EU_KEY = 'logdna-key-eu-de-4ab28f13';
const SEVERITIES: Severity[] = ['normal', 'warning', 'critical'];
const LEVELS = ['INFO', 'WARN', 'ERROR'];

let rx: Receiver;
const sinks: LogdnaSink[] = [];

beforeAll(async () => {
  rx = await startReceiver({ logdnaKeys: { 'us-south': US_KEY, 'eu-de': EU_KEY } });
});
afterAll(async () => {
  await Promise.all(sinks.map((s) => s.close()));
  await rx.close();
});
beforeEach(() => rx.reset());

function sink(region: Region = 'us-south', key = US_KEY, extra: { gzipMinBytes?: number } = {}): LogdnaSink {
  const url = rx.logdnaUrlTemplate.replace('{region}', region);
  const s = new LogdnaSink({ region, url, ingestionKey: key, hostname: 'gateway-7f9c', scrub: secretScrubber([US_KEY, EU_KEY]), ...extra });
  sinks.push(s);
  return s;
}

function record(n: number, extra: Record<string, unknown> = {}): SpoolRecord {
  const event = {
    action: 'codeengine.secret.update',
    outcome: 'success',
    reason: { reasonCode: 200, reasonType: 'OK' },
    message: `Code Engine: update secret db-creds-${n}`,
    correlationId: `tx-${n}`,
    requestData: { note: 'quotes " and \\ backslashes, unicode é ✓, newline\n' },
    ...extra,
  };
  const pos = { segment: 1, offset: n * 100 };
  return {
    json: JSON.stringify(event),
    timestampMs: Date.now() - n,
    severity: SEVERITIES[n % 3] as Severity,
    position: pos,
    next: pos,
    size: 100,
  };
}

function records(count: number): SpoolRecord[] {
  return Array.from({ length: count }, (_, n) => record(n));
}

const signal = (): AbortSignal => AbortSignal.timeout(5000);

test('delivers every event intact, as a JSON string line with level, app and region meta', async () => {
  const batch = records(6);
  await expect(sink().send({ region: 'us-south', records: batch }, signal())).resolves.toEqual({ kind: 'delivered' });
  const got = rx.events('us-south');
  expect(got).toHaveLength(6);
  got.forEach((e, i) => {
    const r = batch[i] as SpoolRecord;
    expect(e.raw).toBe(r.json);
    expect(e.event).toEqual(JSON.parse(r.json));
    expect(e.meta).toMatchObject({
      hostname: 'gateway-7f9c',
      app: 'ce-audit-gateway',
      level: LEVELS[i % 3],
      timestamp: r.timestampMs,
      meta: { region: 'us-south' },
    });
  });
  expect(rx.events('eu-de')).toHaveLength(0);
  const req = rx.requests[0];
  expect(req?.headers['content-type']).toBe('application/json; charset=UTF-8');
  expect(Number(req?.query.now)).toBeGreaterThan(Date.now() - 60_000);
});

test('each region goes to its own endpoint with its own key', async () => {
  await sink('eu-de', EU_KEY).send({ region: 'eu-de', records: records(2) }, signal());
  expect(rx.events('eu-de')).toHaveLength(2);
  expect(rx.events('us-south')).toHaveLength(0);
  expect(rx.events('eu-de')[0]?.meta).toMatchObject({ meta: { region: 'eu-de' } });
});

test('an empty batch is delivered without a request', async () => {
  await expect(sink().send({ region: 'us-south', records: [] }, signal())).resolves.toEqual({ kind: 'delivered' });
  expect(rx.requests).toHaveLength(0);
});

test('a wrong key is rejected with 401 and the reason never contains a key', async () => {
  const wrong = 'logdna-key-wrong-77aa01';
  const s = new LogdnaSink({
    region: 'us-south',
    url: rx.logdnaUrlTemplate.replace('{region}', 'us-south'),
    ingestionKey: wrong,
    hostname: 'h',
    scrub: secretScrubber([wrong]),
  });
  sinks.push(s);
  const result = await s.send({ region: 'us-south', records: records(2) }, signal());
  expect(result).toMatchObject({ kind: 'rejected', status: 401 });
  const reason = (result as { reason: string }).reason;
  expect(reason).toMatch(/^LogDNA ingest answered 401 Unauthorized: Invalid ingestion key/);
  for (const secret of [wrong, US_KEY, Buffer.from(`${wrong}:`).toString('base64')]) expect(reason).not.toContain(secret);
  // the key is refused even without a scrubber: the reason is built from the server's message only
  const bare = new LogdnaSink({
    region: 'eu-de',
    url: rx.logdnaUrlTemplate.replace('{region}', 'eu-de'),
    ingestionKey: wrong,
    hostname: 'h',
  });
  sinks.push(bare);
  expect(JSON.stringify(await bare.send({ region: 'eu-de', records: records(1) }, signal()))).not.toContain(wrong);
});

test('207: 2xx lines are delivered, 4xx lines refused for good, 429/5xx lines retried', async () => {
  rx.behave('us-south', { mode: 'partial', rejectEvery: 2, status: 400 });
  const refused = await sink().send({ region: 'us-south', records: records(5) }, signal());
  expect(refused).toEqual({
    kind: 'partial',
    failed: [1, 3].map((index) => ({
      index,
      retry: false,
      status: 400,
      reason: expect.stringContaining('status 400: line rejected') as unknown as string,
    })),
  });
  expect(rx.events('us-south').map((e) => (e.event as { correlationId: string }).correlationId)).toEqual(['tx-0', 'tx-2', 'tx-4']);

  rx.behave('us-south', { mode: 'partial', rejectEvery: 3, status: 503 });
  const retried = (await sink().send({ region: 'us-south', records: records(6) }, signal())) as Extract<SendResult, { kind: 'partial' }>;
  expect(retried.kind).toBe('partial');
  expect(retried.failed.map((f) => [f.index, f.retry, f.status])).toEqual([
    [2, true, 503],
    [5, true, 503],
  ]);
});

test('an unreadable 207 retries the whole batch', async () => {
  // The receiver always answers a well-formed 207; a stub server answers the broken ones.
  const bodies = [
    '{"status":[{"status":200}]}',
    'not json',
    '{"status":[200,{"status":"x"}]}',
    '{"status":[200,{"status":429,"error":"slow down"}]}',
  ];
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(207, { 'content-type': 'application/json' }).end(bodies.shift()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const s = new LogdnaSink({
      region: 'us-south',
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/logs/ingest`,
      ingestionKey: US_KEY,
      hostname: 'h',
    });
    sinks.push(s);
    for (let i = 0; i < 3; i++) {
      await expect(s.send({ region: 'us-south', records: records(2) }, signal())).resolves.toMatchObject({ kind: 'retry', status: 207 });
    }
    await expect(s.send({ region: 'us-south', records: records(2) }, signal())).resolves.toEqual({
      kind: 'partial',
      failed: [{ index: 1, retry: true, status: 429, reason: 'LogDNA ingest refused the line with status 429: slow down' }],
    });
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('413 -> too-large', async () => {
  rx.behave('us-south', { mode: 'status', status: 413 });
  await expect(sink().send({ region: 'us-south', records: records(3) }, signal())).resolves.toMatchObject({
    kind: 'too-large',
    status: 413,
  });
});

test('a body over the 10 MB limit is too-large without a request', async () => {
  const big = record(0, { requestData: { blob: 'x'.repeat(15_000) } });
  const batch = Array.from({ length: Math.ceil(LOGDNA_MAX_BODY_BYTES / 15_000) + 1 }, () => big);
  await expect(sink().send({ region: 'us-south', records: batch }, signal())).resolves.toMatchObject({ kind: 'too-large' });
  expect(rx.requests).toHaveLength(0);
});

test('a full batch of typical events stays under the 10 MB body limit', () => {
  const s = sink();
  const typical = record(0, {
    requestData: { image_reference: 'icr.io/codeengine/helloworld', env: [{ name: 'LOG_LEVEL', value: 'info' }], pad: 'p'.repeat(1100) },
  });
  const count = Math.min(s.maxBatchEvents, Math.floor(s.maxBatchBytes / Buffer.byteLength(typical.json)));
  const size = Buffer.byteLength(s.body(Array.from({ length: count }, () => typical)));
  expect(size).toBeLessThan(LOGDNA_MAX_BODY_BYTES);
});

test('429 -> retry with Retry-After; 503 and other 5xx -> retry; 400/403/404 -> rejected', async () => {
  rx.behave('us-south', { mode: 'throttle', retryAfterSeconds: 7, times: 1 });
  await expect(sink().send({ region: 'us-south', records: records(1) }, signal())).resolves.toMatchObject({
    kind: 'retry',
    status: 429,
    retryAfterMs: 7000,
  });
  for (const status of [500, 502, 503, 504] as const) {
    rx.behave('us-south', { mode: 'status', status, times: 1 });
    const result = await sink().send({ region: 'us-south', records: records(1) }, signal());
    expect(result).toMatchObject({ kind: 'retry', status });
    expect(result).not.toHaveProperty('retryAfterMs');
  }
  for (const status of [400, 403, 404] as const) {
    rx.behave('us-south', { mode: 'status', status, times: 1 });
    const result = await sink().send({ region: 'us-south', records: records(1) }, signal());
    expect(result).toMatchObject({
      kind: 'rejected',
      status,
      reason: expect.stringMatching(new RegExp(`^LogDNA ingest answered ${status} `)) as unknown,
    });
  }
  expect(rx.events('us-south')).toHaveLength(0);
});

test('a hanging server: the send aborts at the signal and asks for a retry', async () => {
  rx.behave('us-south', { mode: 'hang', times: 1 });
  const started = Date.now();
  const result = await sink().send({ region: 'us-south', records: records(2) }, AbortSignal.timeout(200));
  expect(Date.now() - started).toBeLessThan(2000);
  expect(result).toMatchObject({ kind: 'retry', reason: expect.stringContaining('TimeoutError') as unknown });
});

test('a server that drops connections, or is gone -> retry with the error code', async () => {
  rx.behave('*', { mode: 'down' });
  const result = await sink().send({ region: 'us-south', records: records(2) }, signal());
  expect(result).toMatchObject({
    kind: 'retry',
    reason: expect.stringMatching(/^LogDNA ingest request failed \((UND_ERR_SOCKET|ECONNRESET)\)/) as unknown,
  });
  rx.behave('*', { mode: 'ok' });

  const gone = await startReceiver({});
  const url = `${gone.logdnaUrlTemplate.replace('{region}', 'us-south')}`;
  await gone.close();
  const s = new LogdnaSink({ region: 'us-south', url, ingestionKey: US_KEY, hostname: 'h' });
  sinks.push(s);
  await expect(s.send({ region: 'us-south', records: records(1) }, signal())).resolves.toMatchObject({
    kind: 'retry',
    reason: expect.stringContaining('(ECONNREFUSED)') as unknown,
  });
});

test('gzip: bodies over the threshold are compressed and arrive intact', async () => {
  const batch = records(200);
  const s = sink('us-south', US_KEY, { gzipMinBytes: 1024 });
  await expect(s.send({ region: 'us-south', records: batch }, signal())).resolves.toEqual({ kind: 'delivered' });
  const req = rx.requests[0];
  expect(req?.headers['content-encoding']).toBe('gzip');
  const plainBytes = Buffer.byteLength(s.body(batch));
  expect(req?.bodyBytes).toBeLessThan(plainBytes / 4);
  expect(rx.events('us-south').map((e) => e.raw)).toEqual(batch.map((r) => r.json));

  await s.send({ region: 'us-south', records: records(1) }, signal());
  expect(rx.requests[1]?.headers['content-encoding']).toBeUndefined();
});

test('the body embeds each event as a JSON string', () => {
  const batch = records(2);
  const parsed = JSON.parse(sink().body(batch)) as { lines: Array<{ line: string; level: string; meta: unknown }> };
  expect(parsed.lines.map((l) => l.line)).toEqual(batch.map((r) => r.json));
  expect(parsed.lines[1]).toMatchObject({ level: 'WARN', meta: { region: 'us-south' } });
});
