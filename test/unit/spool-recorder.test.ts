/** The spool's capacity policies, as the proxy sees them through admit(). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { SpoolFullPolicy } from '../../src/config';
import { Metrics } from '../../src/metrics';
import { SpoolRecorder } from '../../src/record/spool-recorder';
import type { RecordedEvent } from '../../src/types';
import { until } from '../support/load';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'spool-recorder-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function recorder(fullPolicy: SpoolFullPolicy, metrics = new Metrics()): Promise<SpoolRecorder> {
  return SpoolRecorder.open({
    dir,
    regions: ['us-south', 'eu-de'],
    consumers: ['logdna'],
    fsync: false,
    segmentBytes: 4096,
    maxBytes: 20_000,
    fullPolicy,
    logger: pino({ level: 'silent' }),
    metrics,
  });
}

function event(i: number, region: 'us-south' | 'eu-de' = 'us-south'): RecordedEvent {
  return {
    id: `e${i}`,
    region,
    eventTime: '2026-11-25T00:00:00.00+0000',
    timestampMs: Date.now(),
    severity: 'normal',
    json: JSON.stringify({ i, pad: 'x'.repeat(1000) }),
  };
}

/** Record events until the spool just reaches its limit. */
async function fill(r: SpoolRecorder, region: 'us-south' | 'eu-de' = 'us-south'): Promise<void> {
  for (let i = 0; i < 100 && !r.isFull(); i++) await r.record(event(i, region));
}

test('reject-writes: mutating calls refused once full, reads pass up to the headroom', async () => {
  const r = await recorder('reject-writes');
  expect(r.admit('POST')).toBeUndefined();
  await fill(r);
  expect(r.isFull()).toBe(true);
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'MKCOL']) expect(r.admit(method)?.code).toBe('ERR_SPOOL_FULL');
  expect(r.admit('GET')).toBeUndefined();
  expect(r.admit('HEAD')).toBeUndefined();
  for (let i = 100; i < 110; i++) await r.record(event(i));
  expect(r.undeliveredBytes()).toBeGreaterThan(25_000);
  expect(r.admit('GET')?.code).toBe('ERR_SPOOL_FULL');
  expect(r.admit('POST')?.message).toMatch(/audit spool is full \(0\.0 MiB of events not yet delivered/);
  await r.close();
});

test('the limit is across regions', async () => {
  const r = await recorder('reject-writes');
  for (let i = 0; i < 12; i++) {
    await r.record(event(i, 'us-south'));
    await r.record(event(i, 'eu-de'));
  }
  expect(r.isFull()).toBe(true);
  expect(r.admit('POST')).toBeDefined();
  await r.close();
});

test('reject-all: every call refused once full; admitted again once delivered', async () => {
  const r = await recorder('reject-all');
  await fill(r);
  expect(r.admit('GET')?.code).toBe('ERR_SPOOL_FULL');
  const spool = r.spoolFor('us-south');
  await spool.acknowledge('logdna', spool.endPosition);
  expect(r.isFull()).toBe(false);
  expect(r.admit('GET')).toBeUndefined();
  await r.close();
});

test('drop-oldest: always admits, drops the oldest undelivered events and counts them', async () => {
  const metrics = new Metrics();
  const r = await recorder('drop-oldest', metrics);
  for (let i = 0; i < 60; i++) await r.record(event(i));
  expect(r.admit('POST')).toBeUndefined();
  const spool = r.spoolFor('us-south');
  const state = async () => {
    const dropped = (await metrics.eventsDropped.get()).values.reduce((s, v) => s + v.value, 0);
    const left = await spool.read(spool.cursor('logdna'), 1000, 1 << 20);
    return { dropped, ids: left.map((x) => (JSON.parse(x.json) as { i: number }).i) };
  };
  // Dropping runs beside recording: wait until it has settled under the limit.
  expect(await until(async () => r.undeliveredBytes() <= 20_000 && ((s) => s.ids.length + s.dropped === 60)(await state()), 2000)).toBe(
    true,
  );
  const { dropped, ids } = await state();
  expect(dropped).toBeGreaterThan(0);
  // What is left is the newest events, intact and in order.
  expect(ids).toEqual(Array.from({ length: ids.length }, (_, k) => 60 - ids.length + k));
  await r.close();
});
