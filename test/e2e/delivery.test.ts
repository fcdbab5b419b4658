/**
 * Delivery to the Activity Tracker of each event's own region, through the real ingestion APIs (a receiver
 * that behaves like them), counted by event id: nothing lost, nothing sent to another region.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import request from 'supertest';
import { startReceiver, type Receiver } from '../../src/receiver/receiver';
import type { AuditEvent } from '../../src/types';
import { useReceiverAndGateway } from '../support/delivery';
import { startHarness, type Harness } from '../support/harness';
import { fireCalls, until } from '../support/load';

const KEYS = { 'us-south': 'us-south-ingestion-key-1f2e3d', 'eu-de': 'eu-de-ingestion-key-4c5b6a' };

function receivedIds(receiver: Receiver, region: string): string[] {
  return receiver.events(region).map((e) => (e.event as AuditEvent).id);
}

function logdnaEnv(receiver: Receiver, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CE_REGIONS: 'us-south,eu-de',
    AT_SINK: 'file,logdna',
    AT_LOGDNA_URL: receiver.logdnaUrlTemplate,
    AT_INGESTION_KEY_US_SOUTH: KEYS['us-south'],
    AT_INGESTION_KEY_EU_DE: KEYS['eu-de'],
    DELIVERY_THREAD: 'worker',
    BATCH_MAX_WAIT_MS: '20',
    RETRY_BASE_MS: '100',
    RETRY_MAX_MS: '1000',
    ...extra,
  };
}

describe('10,000 calls in two regions', () => {
  const ctx = useReceiverAndGateway({ logdnaKeys: KEYS }, (receiver) => logdnaEnv(receiver, { LOG_LEVEL: 'info' }));

  test('every event reaches its own region exactly once, and no other region', async () => {
    const { receiver, h } = ctx;
    const calls = Array.from({ length: 10_000 }, (_, i) => ({
      path: i % 2 === 0 ? '/v2/function_runtimes' : '/regions/eu-de/v2/function_runtimes',
      transactionId: `bulk-${i}`,
    }));
    const results = await fireCalls(h.url, calls, { concurrency: 32 });
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(await until(() => receiver.events().length >= 10_000, 60_000)).toBe(true);

    const journal = await h.events();
    for (const region of ['us-south', 'eu-de'] as const) {
      const expected = journal.filter((e) => e.target.id.includes(`:${region}:`)).map((e) => e.id);
      const got = receivedIds(receiver, region);
      expect(expected).toHaveLength(5000);
      expect(new Set(got).size).toBe(got.length);
      expect(new Set(got)).toEqual(new Set(expected));
    }
    // Region by region: the eu-de stream holds only eu-de events, and the reverse.
    expect(
      receiver.events('eu-de').every((e) => (e.event as AuditEvent).target.id.startsWith('crn:v1:bluemix:public:codeengine:eu-de:')),
    ).toBe(true);
    expect(
      receiver.events('us-south').every((e) => (e.event as AuditEvent).target.id.startsWith('crn:v1:bluemix:public:codeengine:us-south:')),
    ).toBe(true);
    // Each region's events were sent with that region's key only.
    const authOf = (region: string) => receiver.requests.filter((r) => r.region === region && r.api === 'logdna').map((r) => r.status);
    expect(authOf('us-south').every((s) => s === 200)).toBe(true);
    expect(authOf('eu-de').every((s) => s === 200)).toBe(true);
  }, 120_000);

  test('metrics count what was recorded and delivered, per region and sink', async () => {
    const { h } = ctx;
    const text = await (await fetch(`${h.adminUrl}/metrics`)).text();
    expect(text).toMatch(/ce_audit_events_recorded_total\{region="eu-de"\} 5000/);
    expect(text).toMatch(/ce_audit_events_delivered_total\{region="us-south",sink="logdna"\} 5000/);
    expect(text).toMatch(/ce_audit_events_delivered_total\{region="eu-de",sink="file"\} 5000/);
    expect(text).toMatch(/ce_audit_spool_bytes\{region="us-south"\} \d+/);
    expect(text).toMatch(/ce_audit_oldest_undelivered_event_age_seconds\{region="eu-de"\} 0/);
    expect(text).toMatch(/ce_audit_upstream_request_duration_seconds_count\{region="eu-de",upstream="api",status="2xx"\} 5000/);
    expect(text).toMatch(/ce_audit_event_record_duration_seconds_count\{region="us-south"\} 5000/);
    // Every call's wait for its event to be durable is timed.
    expect(text).toMatch(/ce_audit_event_record_duration_seconds_bucket\{le="\+Inf",region="us-south"\} 5000/);
  });
});

describe('the delivery thread dies', () => {
  const ctx = useReceiverAndGateway({ logdnaKeys: KEYS }, (receiver) => logdnaEnv(receiver, { LOG_LEVEL: 'info' }));

  test('mid-burst: it is started again, calls never wait for it, and every event is delivered', async () => {
    const { receiver, h } = ctx;
    const calls = Array.from({ length: 3000 }, (_, i) => ({ path: '/v2/function_runtimes', transactionId: `thread-${i}` }));
    const burst = fireCalls(h.url, calls, { concurrency: 16 });
    expect(await until(() => receiver.events().length >= 300, 20_000)).toBe(true);
    // Killed mid-burst, while events are still to be delivered, the hard way: no stop message, no flush.
    expect(receivedIds(receiver, 'us-south').length).toBeLessThan(3000);
    const thread = (h.gateway.delivery as unknown as { worker?: Worker }).worker;
    expect(thread).toBeDefined();
    await thread?.terminate();
    const results = await burst;
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(await until(() => new Set(receivedIds(receiver, 'us-south')).size >= 3000, 60_000)).toBe(true);

    const journal = await h.events();
    // Every call's event is in the journal. Killed without a stop, the thread may have written a batch to the
    // journal and died before acknowledging it: that batch is written again after the restart (at least once,
    // README), so a line may repeat, but only as an exact copy of the same event.
    const byId = new Map<string, unknown>();
    for (const e of journal) {
      if (byId.has(e.id)) expect(e).toEqual(byId.get(e.id));
      else byId.set(e.id, e);
    }
    expect(byId.size).toBe(3000);
    expect(new Set(journal.map((e) => e.transactionID))).toEqual(new Set(calls.map((c) => c.transactionId)));
    expect(new Set(receivedIds(receiver, 'us-south'))).toEqual(new Set(byId.keys()));
    expect(h.logs()).toMatch(/delivery thread exited; starting it again/);
  }, 120_000);
});

describe('throttling and server errors', () => {
  const ctx = useReceiverAndGateway({ logdnaKeys: KEYS }, (receiver) =>
    logdnaEnv(receiver, { CE_REGIONS: 'us-south', AT_SINK: 'logdna', RETRY_BASE_MS: '200', RETRY_MAX_MS: '1000' }),
  );

  test('429 with Retry-After, then 503 for a while: backoff observed, nothing lost', async () => {
    const { receiver, h } = ctx;
    receiver.behave('*', { mode: 'throttle', retryAfterSeconds: 2, times: 2 });
    const calls = Array.from({ length: 200 }, (_, i) => ({ path: '/v2/function_runtimes', transactionId: `thr-${i}` }));
    const results = await fireCalls(h.url, calls, { concurrency: 8 });
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(await until(() => receiver.requests.filter((r) => r.status === 429).length >= 2, 10_000)).toBe(true);
    receiver.behave('*', { mode: 'status', status: 503 });
    const since503 = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    receiver.behave('*', { mode: 'ok' });
    expect(await until(() => receiver.events().length >= 200, 20_000)).toBe(true);

    const ingest = receiver.requests.filter((r) => r.api === 'logdna');
    const throttled = ingest.filter((r) => r.status === 429);
    // Retry-After: 2 s was honoured between the two 429s and before the next attempt.
    const afterFirst = ingest[ingest.indexOf(throttled[0] as (typeof ingest)[number]) + 1];
    expect((afterFirst?.at ?? 0) - (throttled[0]?.at ?? 0)).toBeGreaterThanOrEqual(1900);
    // 503 for 3 s: a backing-off sender makes a handful of attempts, not hundreds.
    const attempts503 = ingest.filter((r) => r.status === 503 && r.at >= since503).length;
    expect(attempts503).toBeGreaterThan(1);
    expect(attempts503).toBeLessThan(40);
    const ids = receivedIds(receiver, 'us-south');
    expect(new Set(ids).size).toBe(200);
    const text = await (await fetch(`${h.adminUrl}/metrics`)).text();
    expect(text).toMatch(/ce_audit_events_retried_total\{region="us-south",sink="logdna"\} [1-9]\d*/);
  }, 60_000);
});

describe('a wrong ingestion key', () => {
  let receiver: Receiver;
  let h: Harness;
  const WRONG = 'not-the-right-key-77f1c0ffee';
  beforeAll(async () => {
    receiver = await startReceiver({ logdnaKeys: KEYS });
    h = await startHarness(
      logdnaEnv(receiver, { CE_REGIONS: 'us-south', AT_INGESTION_KEY_US_SOUTH: WRONG, SINK_UNHEALTHY_AFTER_MS: '1000' }),
    );
  });
  afterAll(async () => {
    await h.close();
    await receiver.close();
  });

  test('dead-letter file with the reason, a metric, a clear log line, readiness fails, and the key nowhere', async () => {
    const calls = Array.from({ length: 20 }, (_, i) => ({ path: '/v2/function_runtimes', transactionId: `dl-${i}` }));
    expect((await fireCalls(h.url, calls, { concurrency: 4 })).every((r) => r.status === 200)).toBe(true);
    const dlq = path.join(h.spoolDir, 'dead-letter', 'us-south', 'logdna.jsonl');
    const lines = async () => (await readFile(dlq, 'utf8').catch(() => '')).split('\n').filter(Boolean);
    expect(await until(async () => (await lines()).length >= 20, 10_000)).toBe(true);
    const letters = (await lines()).map(
      (l) => JSON.parse(l) as { status: number; reason: string; region: string; sink: string; event: AuditEvent },
    );
    expect(letters[0]).toMatchObject({ status: 401, region: 'us-south', sink: 'logdna' });
    expect(letters[0]?.reason).toMatch(/401/);
    expect(new Set(letters.map((l) => l.event.transactionID))).toEqual(new Set(calls.map((c) => c.transactionId)));

    const metrics = await (await fetch(`${h.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/ce_audit_events_dead_lettered_total\{region="us-south",sink="logdna"\} 20/);
    expect(h.logs()).toMatch(/"status":401.*events refused by the sink were moved to the dead-letter file/);
    // The journal still has them all (each sink has its own delivery state).
    expect((await h.events()).length).toBe(20);

    await new Promise((r) => setTimeout(r, 1100));
    const ready = await fetch(`${h.adminUrl}/readyz`);
    expect(ready.status).toBe(503);
    const readyText = await ready.text();
    expect(readyText).toMatch(/us-south\/logdna has been failing/);

    const basic = Buffer.from(`${WRONG}:`).toString('base64');
    for (const text of [h.logs(), (await lines()).join('\n'), metrics, readyText, JSON.stringify(receiver.requests)]) {
      expect(text.includes(WRONG)).toBe(false);
      expect(text.includes(basic)).toBe(false);
    }
  }, 30_000);
});

describe('IBM Cloud Logs with an IAM token', () => {
  let receiver: Receiver;
  let h: Harness;
  const API_KEY = 'iam-api-key-for-cloud-logs-0042';
  beforeAll(async () => {
    receiver = await startReceiver({ iamApiKeys: [API_KEY] });
    h = await startHarness({
      AT_SINK: 'file,cloud-logs',
      AT_CLOUD_LOGS_URL: receiver.cloudLogsUrlTemplate,
      IBMCLOUD_API_KEY: API_KEY,
      IAM_TOKEN_URL: receiver.iamTokenUrl,
      BATCH_MAX_WAIT_MS: '20',
      ACTION_CATALOG: 'current',
    });
  });
  afterAll(async () => {
    await h.close();
    await receiver.close();
  });

  test('events arrive as Cloud Logs entries with mapped severity; one token serves every batch', async () => {
    const project = (await request(h.url).post('/v2/projects').send({ name: 'cl' })).body.id as string;
    await request(h.url)
      .post(`/v2/projects/${project}/secrets`)
      .send({ name: 's', format: 'generic', data: { k: 'v' } });
    for (let i = 0; i < 5; i++) await request(h.url).get(`/v2/projects/${project}/apps`);
    expect(await until(() => receiver.events('us-south').length >= 7, 10_000)).toBe(true);
    const entries = receiver.events('us-south');
    expect(entries.every((e) => e.api === 'cloud-logs')).toBe(true);
    const secret = entries.find((e) => (e.event as AuditEvent).action === 'codeengine.secret.create');
    expect(secret?.meta).toMatchObject({ applicationName: 'ibm-audit-events', subsystemName: 'codeengine', severity: 5 });
    const list = entries.find((e) => (e.event as AuditEvent).action === 'codeengine.application.list');
    expect(list?.meta).toMatchObject({ severity: 3 });
    expect(receiver.tokensIssued).toBe(1);
    expect(h.logs().includes(API_KEY)).toBe(false);
  });
});

describe('regions', () => {
  const ctx = useReceiverAndGateway({ logdnaKeys: KEYS }, (receiver) => logdnaEnv(receiver, {}));

  test('an unknown region prefix gets a clear 400, audited, and is forwarded nowhere', async () => {
    const { h } = ctx;
    const before = h.upstream.requests.length;
    const res = await request(h.url).get('/regions/jp-tok/v2/projects').set('x-transaction-id', 'bad-region');
    expect(res.status).toBe(400);
    expect(res.body.errors[0].message).toMatch(/region "jp-tok" is not configured on this gateway\. Configured regions: us-south, eu-de/);
    expect(h.upstream.requests.length).toBe(before);
    const [e] = await h.eventsFor('bad-region');
    expect(e).toMatchObject({ outcome: 'failure', reason: { reasonCode: 400 } });
  });

  test('a region prefix is stripped before forwarding, and names the region of the event', async () => {
    const { receiver, h } = ctx;
    const res = await request(h.url).get('/regions/eu-de/v2/function_runtimes').set('x-transaction-id', 'eu-call');
    expect(res.status).toBe(200);
    expect(h.upstream.requests[h.upstream.requests.length - 1]?.url).toBe('/v2/function_runtimes');
    const [e] = await h.eventsFor('eu-call');
    expect(e?.target.id).toMatch(/^crn:v1:bluemix:public:codeengine:eu-de:/);
    expect(e?.requestData.path).toBe('/v2/function_runtimes');
    expect(await until(() => receiver.events('eu-de').some((x) => (x.event as AuditEvent).transactionID === 'eu-call'), 5000)).toBe(true);
  });
});
