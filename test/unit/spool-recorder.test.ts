/** The spool's capacity policies, as the proxy sees them through admit(). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { SpoolFullPolicy } from '../../src/config';
import { Metrics } from '../../src/metrics';
import { SpoolRecorder } from '../../src/record/spool-recorder';
import type { RecordedEvent } from '../../src/types';
import { installFsFaults, type FaultController } from '../support/fs-faults';
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
    json: JSON.stringify({ id: `e${i}`, i, pad: 'x'.repeat(1000) }),
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

describe('a spool that cannot be written', () => {
  let faults: FaultController;
  beforeAll(() => {
    faults = installFsFaults();
  });
  afterEach(() => faults.clear());
  afterAll(() => faults.uninstall());

  function captured(): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
    const out: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => out.push(line) });
    return { logger, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
  }

  async function failingRecorder(holdMs: number) {
    const metrics = new Metrics();
    const log = captured();
    const r = await SpoolRecorder.open({
      dir,
      regions: ['us-south', 'eu-de'],
      consumers: ['logdna'],
      fsync: true,
      segmentBytes: 64 * 1024,
      maxBytes: 1 << 30,
      fullPolicy: 'reject-writes',
      logger: log.logger,
      metrics,
      holdMs,
    });
    return { r, metrics, log };
  }

  test('refuses new calls of that region at the first failed write, holds forwarded calls at most SPOOL_HOLD_MS, recovers', async () => {
    const { r, metrics, log } = await failingRecorder(400);
    faults.set([{ under: path.join(dir, 'us-south'), ops: ['write'], error: 'ENOSPC', partial: true }]);
    const started = Date.now();
    // A call forwarded before the disk failed: answered after the hold, its event kept in memory and in the log.
    await r.record(event(1), { forwarded: true });
    const held = Date.now() - started;
    expect(held).toBeGreaterThanOrEqual(390);
    expect(held).toBeLessThan(400 + 300);
    expect(r.admit('GET', 'us-south')?.code).toBe('ERR_SPOOL_UNWRITABLE');
    expect(r.admit('GET', 'us-south')?.message).toMatch(/refused rather than left unaudited/);
    // Another region's spool is fine; with no region named, any failing spool refuses.
    expect(r.admit('GET', 'eu-de')).toBeUndefined();
    expect(r.admit('GET')?.code).toBe('ERR_SPOOL_UNWRITABLE');
    expect(r.isHealthy()).toBe(false);
    expect(r.writeProblems()).toEqual([
      expect.stringMatching(
        /^audit events cannot be written to the spool of us-south: SPOOL_DIR ".*us-south" cannot be written: the disk is full \(ENOSPC\)\. Fix: free space .* Writes have failed for \d+\.\d s/,
      ),
    ]);
    // A refused call's event never waits for the disk.
    const refusedAt = Date.now();
    await r.record(event(2));
    expect(Date.now() - refusedAt).toBeLessThan(100);
    const copies = log.lines().filter((l) => l.auditEvent !== undefined);
    expect(copies.map((l) => (l.auditEvent as { i: number }).i)).toEqual([1, 2]);
    expect((await metrics.answeredBeforeDurable.get()).values[0]?.value).toBe(2);
    expect((await metrics.registry.metrics()).match(/ce_audit_events_awaiting_disk\{region="us-south"\} (\d+)/)?.[1]).toBe('2');

    const freedAt = Date.now();
    faults.clear();
    expect(await until(() => r.isHealthy(), 2000, 5)).toBe(true);
    expect(Date.now() - freedAt).toBeLessThan(1000);
    expect(r.admit('POST', 'us-south')).toBeUndefined();
    // Both events were written first, in order, before anything recorded after the recovery.
    await r.record(event(3), { forwarded: true });
    const spool = r.spoolFor('us-south');
    const records = await spool.read(spool.cursor('logdna'), 100, 1 << 20);
    expect(records.map((x) => (JSON.parse(x.json) as { i: number }).i)).toEqual([1, 2, 3]);
    expect(log.lines().some((l) => String(l.msg).startsWith('spool writes recovered'))).toBe(true);
    expect((await r.close()).count).toBe(0);
  });

  test('a write that hangs past SPOOL_HOLD_MS refuses new calls (the disk is stalled); close(deadline) reports what is unwritten', async () => {
    const { r, log } = await failingRecorder(300);
    faults.set([{ under: path.join(dir, 'us-south'), ops: ['write'], hang: true }]);
    await r.record(event(1), { forwarded: true });
    // The hold and the stall are both measured against SPOOL_HOLD_MS from nearly the same instant: the stall shows
    // within a few milliseconds of the hold's end.
    expect(await until(() => r.admit('GET', 'us-south') !== undefined, 200, 5)).toBe(true);
    expect(r.writeProblems()[0]).toMatch(/a write has not completed for \d+\.\d s \(the disk is stalled\)/);
    const closing = Date.now();
    const report = await r.close(Date.now() + 200);
    expect(Date.now() - closing).toBeLessThan(200 + 250 + 200);
    // The event, and the audit log's shutdown checkpoint queued behind it (an event of its own).
    expect(report).toEqual({ count: 2, ids: ['e1', expect.any(String)] });
    const last = log.lines().at(-1);
    expect(last).toMatchObject({ count: 2, ids: report.ids });
    expect(String(last?.msg)).toMatch(/^shutdown: 2 audit events could not be written to the spool/);
    const copies = log.lines().filter((l) => l.level === 50 && l.auditEvent !== undefined);
    expect(copies.map((l) => (l.auditEvent as { action?: string }).action)).toEqual([undefined, 'ceaudit.checkpoint.create']);
    // A copy in the log is outside the audit chain: it never carries the chain's block.
    for (const c of copies) expect(c.auditEvent).not.toHaveProperty('auditChain');
  });
});
