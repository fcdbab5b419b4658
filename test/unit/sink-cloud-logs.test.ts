/**
 * CloudLogsSink against the real receiver on 127.0.0.1 (ingest API and IAM): delivery, token handling (one
 * token across sends, one refresh on 401), dropped entries and the status mapping.
 */
import { secretScrubber } from '../../src/delivery/dead-letter';
import { CloudLogsSink } from '../../src/delivery/sinks/cloud-logs-sink';
import { IamTokenProvider } from '../../src/delivery/sinks/iam-token';
import { startReceiver, type Receiver } from '../../src/receiver/receiver';
import type { SpoolRecord } from '../../src/spool/types';
import type { Region, Severity } from '../../src/types';

const IAM_KEY = 'iam-apikey-cloud-logs-9e27b4c1';
const SEVERITIES: Severity[] = ['normal', 'warning', 'critical'];
const HOUR = 60 * 60 * 1000;

let rx: Receiver;
const closers: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  rx = await startReceiver({ iamApiKeys: [IAM_KEY] });
});
afterAll(async () => {
  await Promise.all(closers.map((c) => c.close()));
  await rx.close();
});
beforeEach(() => rx.reset());

function setup(region: Region = 'us-south', apiKey = IAM_KEY, iamUrl = rx.iamTokenUrl): { sink: CloudLogsSink; tokens: IamTokenProvider } {
  const tokens = new IamTokenProvider({ url: iamUrl, apiKey, timeoutMs: 5000 });
  const sink = new CloudLogsSink({
    region,
    url: rx.cloudLogsUrlTemplate.replace('{region}', region),
    tokens,
    application: 'ibm-audit-events',
    subsystem: 'codeengine',
    computerName: 'gateway-7f9c',
    scrub: secretScrubber([apiKey]),
  });
  closers.push(sink, tokens);
  return { sink, tokens };
}

function record(n: number, timestampMs = Date.now() - n): SpoolRecord {
  const event = {
    action: 'codeengine.app.delete',
    outcome: 'failure',
    reason: { reasonCode: 403, reasonType: 'Forbidden' },
    correlationId: `tx-${n}`,
    note: 'é ✓ "q" \\',
  };
  const pos = { segment: 1, offset: n * 100 };
  return { json: JSON.stringify(event), timestampMs, severity: SEVERITIES[n % 3] as Severity, position: pos, next: pos, size: 100 };
}

function records(count: number): SpoolRecord[] {
  return Array.from({ length: count }, (_, n) => record(n));
}

const signal = (): AbortSignal => AbortSignal.timeout(5000);
const batch = (count: number, region: Region = 'us-south') => ({ region, records: records(count) });

test('delivers every event intact, the event as a JSON object, with one token across sends', async () => {
  const { sink } = setup();
  const sent = records(6);
  await expect(sink.send({ region: 'us-south', records: sent }, signal())).resolves.toEqual({ kind: 'delivered' });
  await expect(sink.send(batch(2), signal())).resolves.toEqual({ kind: 'delivered' });
  const got = rx.events('us-south');
  expect(got).toHaveLength(8);
  sent.forEach((r, i) => {
    expect(got[i]?.event).toEqual(JSON.parse(r.json));
    expect(got[i]?.raw).toBe(r.json);
    expect(got[i]?.meta).toEqual({
      applicationName: 'ibm-audit-events',
      subsystemName: 'codeengine',
      computerName: 'gateway-7f9c',
      severity: [3, 4, 5][i % 3],
      timestamp: r.timestampMs,
    });
  });
  expect(rx.events('eu-de')).toHaveLength(0);
  expect(rx.tokensIssued).toBe(1);
  expect(sink.droppedReported).toBe(0);
});

test('region-scoped: each sink posts to its own region', async () => {
  await setup('eu-de').sink.send(batch(3, 'eu-de'), signal());
  expect(rx.events('eu-de')).toHaveLength(3);
  expect(rx.events('us-south')).toHaveLength(0);
});

test('401: the token is refreshed once and the send succeeds', async () => {
  const { sink } = setup();
  await sink.send(batch(1), signal());
  rx.behave('us-south', { mode: 'status', status: 401, times: 1 });
  await expect(sink.send(batch(2), signal())).resolves.toEqual({ kind: 'delivered' });
  expect(rx.tokensIssued).toBe(2);
  expect(rx.events('us-south')).toHaveLength(3);
  expect(rx.requests.filter((r) => r.api === 'cloud-logs').map((r) => r.status)).toEqual([200, 401, 200]);
});

test('a second 401 with a fresh token is rejected', async () => {
  const { sink } = setup();
  rx.behave('us-south', { mode: 'status', status: 401, times: 2 });
  await expect(sink.send(batch(2), signal())).resolves.toMatchObject({ kind: 'rejected', status: 401 });
  expect(rx.tokensIssued).toBe(2);
  expect(rx.requests.filter((r) => r.api === 'cloud-logs')).toHaveLength(2);
});

test('a refused IAM key is rejected without the key; IAM unreachable is retried', async () => {
  const wrong = 'iam-apikey-wrong-4c11e0a9';
  const result = await setup('us-south', wrong).sink.send(batch(1), signal());
  expect(result).toMatchObject({ kind: 'rejected', status: 400, reason: expect.stringContaining('BXNIM0415E') as unknown });
  expect(JSON.stringify(result)).not.toContain(wrong);
  expect(rx.requests.filter((r) => r.api === 'cloud-logs')).toHaveLength(0);

  const gone = await startReceiver({});
  const iamUrl = gone.iamTokenUrl;
  await gone.close();
  await expect(setup('us-south', IAM_KEY, iamUrl).sink.send(batch(1), signal())).resolves.toMatchObject({
    kind: 'retry',
    reason: expect.stringContaining('ECONNREFUSED') as unknown,
  });
});

test('a 200 that reports dropped entries counts as delivered and the drops are counted', async () => {
  const { sink } = setup();
  const stale = [record(0), record(1, Date.now() - 30 * HOUR), record(2), record(3, Date.now() + 5 * HOUR)];
  await expect(sink.send({ region: 'us-south', records: stale }, signal())).resolves.toEqual({ kind: 'delivered' });
  expect(sink.droppedReported).toBe(2);
  expect(sink.lastDroppedReason).toMatch(/2 logs outside the accepted time window/);
  rx.behave('us-south', { mode: 'partial', rejectEvery: 2 });
  await expect(sink.send(batch(4), signal())).resolves.toEqual({ kind: 'delivered' });
  expect(sink.droppedReported).toBe(4);
  expect(rx.events('us-south')).toHaveLength(4);
});

test('403 -> rejected (Sender role); 400/404 -> rejected; 413 -> too-large; 429 and 5xx -> retry', async () => {
  const { sink } = setup();
  rx.behave('us-south', { mode: 'status', status: 403, times: 1 });
  await expect(sink.send(batch(1), signal())).resolves.toMatchObject({
    kind: 'rejected',
    status: 403,
    reason: expect.stringContaining('Sender role') as unknown,
  });
  for (const status of [400, 404] as const) {
    rx.behave('us-south', { mode: 'status', status, times: 1 });
    await expect(sink.send(batch(1), signal())).resolves.toMatchObject({
      kind: 'rejected',
      status,
      reason: expect.stringMatching(/^Cloud Logs ingest answered/) as unknown,
    });
  }
  rx.behave('us-south', { mode: 'status', status: 413, times: 1 });
  await expect(sink.send(batch(1), signal())).resolves.toMatchObject({ kind: 'too-large', status: 413 });
  rx.behave('us-south', { mode: 'throttle', retryAfterSeconds: 3, times: 1 });
  await expect(sink.send(batch(1), signal())).resolves.toMatchObject({ kind: 'retry', status: 429, retryAfterMs: 3000 });
  for (const status of [500, 502, 503, 504] as const) {
    rx.behave('us-south', { mode: 'status', status, times: 1 });
    await expect(sink.send(batch(1), signal())).resolves.toMatchObject({ kind: 'retry', status });
  }
  expect(rx.events('us-south')).toHaveLength(0);
  expect(rx.tokensIssued).toBe(1);
});

test('a real 413: an entry over the per-log limit', async () => {
  const small = await startReceiver({ iamApiKeys: [IAM_KEY], cloudLogsMaxLogBytes: 100 });
  try {
    const tokens = new IamTokenProvider({ url: small.iamTokenUrl, apiKey: IAM_KEY, timeoutMs: 5000 });
    const sink = new CloudLogsSink({
      region: 'us-south',
      url: small.cloudLogsUrlTemplate.replace('{region}', 'us-south'),
      tokens,
      application: 'a',
      subsystem: 's',
    });
    closers.push(sink, tokens);
    await expect(sink.send(batch(1), signal())).resolves.toMatchObject({ kind: 'too-large', status: 413 });
  } finally {
    await small.close();
  }
});

test('a hanging server: the send aborts at the signal and asks for a retry; a dropped connection too', async () => {
  const { sink, tokens } = setup();
  await tokens.token(signal());
  rx.behave('us-south', { mode: 'hang', times: 1 });
  const started = Date.now();
  await expect(sink.send(batch(2), AbortSignal.timeout(200))).resolves.toMatchObject({
    kind: 'retry',
    reason: expect.stringContaining('TimeoutError') as unknown,
  });
  expect(Date.now() - started).toBeLessThan(2000);
  rx.behave('us-south', { mode: 'down' });
  await expect(sink.send(batch(2), signal())).resolves.toMatchObject({
    kind: 'retry',
    reason: expect.stringMatching(/^Cloud Logs ingest request failed/) as unknown,
  });
});
