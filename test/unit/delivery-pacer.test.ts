/**
 * The delivery pacer, driven tick by tick with a scripted clock, event count and thread utilization: full speed
 * without calls; small batches, one request and growing pauses while calls keep the thread busy; never slower
 * than twice the recording rate.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { loadConfig } from '../../src/config';
import { DeadLetters } from '../../src/delivery/dead-letter';
import { Delivery } from '../../src/delivery/delivery';
import {
  BUSY_HIGH,
  DeliveryPacer,
  FULL_SPEED,
  LIVE_BATCH_EVENTS,
  LIVE_WINDOW_MS,
  MAX_GAP_MS,
  PACER_TICK_MS,
  type Pace,
} from '../../src/delivery/pacer';
import type { Sink } from '../../src/delivery/sinks/sink';
import { DeliveryMetrics } from '../../src/metrics';
import { RegionSpool } from '../../src/spool/region-spool';

/** A pacer on a scripted thread: each step advances the clock one tick, records `added` events, reports `busy`. */
function scripted(): { pacer: DeliveryPacer; step: (added: number, busy: number) => void } {
  let now = 0;
  let recorded = 0;
  let busy = 0;
  const pacer = new DeliveryPacer({ recorded: () => recorded, utilization: () => busy, now: () => now });
  return {
    pacer,
    step: (added, b) => {
      now += PACER_TICK_MS;
      recorded += added;
      busy = b;
      pacer.tick();
    },
  };
}

test('no calls: full speed, however busy the thread is (delivery alone)', () => {
  const { pacer, step } = scripted();
  expect(pacer.pace).toBe(FULL_SPEED);
  for (let i = 0; i < 20; i++) step(0, 1);
  expect(pacer.pace).toBe(FULL_SPEED);
});

test('calls on an idle thread: small batches one at a time, no pause', () => {
  const { pacer, step } = scripted();
  for (let i = 0; i < 10; i++) step(25, 0.2);
  expect(pacer.pace).toMatchObject({ batchEvents: LIVE_BATCH_EVENTS, maxInFlight: 1, gapMs: 0 });
  // 25 events per 50 ms, smoothed: close to 500 events/s.
  expect(pacer.pace.recordRate).toBeGreaterThan(450);
  expect(pacer.pace.recordRate).toBeLessThanOrEqual(500);
});

test('calls on a busy thread: the pause doubles up to its cap, shrinks when the thread is idle again, and lifts when calls stop', () => {
  const { pacer, step } = scripted();
  const gaps: number[] = [];
  // 2 events per tick = 40/s: the floor (twice that rate) allows far more than MAX_GAP_MS.
  for (let i = 0; i < 8; i++) {
    step(2, 0.9);
    gaps.push(pacer.pace.gapMs);
  }
  expect(gaps).toEqual([2, 4, 8, 16, 32, MAX_GAP_MS, MAX_GAP_MS, MAX_GAP_MS]);
  step(2, 0.5);
  expect(pacer.pace.gapMs).toBe(MAX_GAP_MS);
  const shrinking: number[] = [];
  for (let i = 0; i < 7; i++) {
    step(2, 0.1);
    shrinking.push(pacer.pace.gapMs);
  }
  expect(shrinking).toEqual([25, 13, 6, 3, 2, 0, 0]);
  for (let i = 0; i < 5; i++) step(2, 0.9);
  expect(pacer.pace.gapMs).toBeGreaterThan(0);
  // The last event was recorded; calls count as ongoing for LIVE_WINDOW_MS more.
  for (let t = PACER_TICK_MS; t <= LIVE_WINDOW_MS; t += PACER_TICK_MS) step(0, 0.9);
  expect(pacer.pace).not.toBe(FULL_SPEED);
  step(0, 0.9);
  expect(pacer.pace).toBe(FULL_SPEED);
});

test('a fast recording rate caps the pause: a batch per pause carries twice the events recorded meanwhile', () => {
  const { pacer, step } = scripted();
  // 250 events per 50 ms = 5,000/s: LIVE_BATCH_EVENTS per pause must cover 10,000/s, so at most 10 ms.
  for (let i = 0; i < 40; i++) step(250, 1);
  expect(pacer.pace.gapMs).toBe(Math.round((LIVE_BATCH_EVENTS * 1000) / (2 * 5000)));
  expect(pacer.pace.gapMs).toBeLessThan(MAX_GAP_MS);
});

test('property: the pause stays within [0, MAX_GAP_MS] and under the rate floor; full speed exactly when no calls for LIVE_WINDOW_MS', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ added: fc.oneof(fc.constant(0), fc.nat(2000)), busy: fc.double({ min: 0, max: 1, noNaN: true }) }), {
        minLength: 1,
        maxLength: 200,
      }),
      fc.nat(2000),
      fc.double({ min: BUSY_HIGH + 0.01, max: 1, noNaN: true }),
      (steps, steady, busy) => {
        const { pacer, step } = scripted();
        let idleMs = Number.POSITIVE_INFINITY;
        for (const s of steps) {
          step(s.added, s.busy);
          idleMs = s.added > 0 ? 0 : idleMs + PACER_TICK_MS;
          const { gapMs } = pacer.pace;
          if (gapMs < 0 || gapMs > MAX_GAP_MS) return false;
          if (idleMs > LIVE_WINDOW_MS !== (pacer.pace === FULL_SPEED)) return false;
        }
        // Then a steady rate long enough for the smoothing to settle: the floor holds whatever came before.
        if (steady === 0) return true;
        for (let i = 0; i < 40; i++) step(steady, busy);
        const rate = (steady * 1000) / PACER_TICK_MS;
        return pacer.pace.gapMs <= (LIVE_BATCH_EVENTS * 1000) / (2 * rate) + 1;
      },
    ),
    { numRuns: 300 },
  );
});

test('the real timer: start samples the thread, stop returns to full speed, and the timer never keeps the process alive', async () => {
  let recorded = 0;
  const pacer = new DeliveryPacer({ recorded: () => recorded });
  pacer.start();
  pacer.start();
  const until = Date.now() + 4 * PACER_TICK_MS;
  while (Date.now() < until) {
    recorded += 10;
    await new Promise((r) => setTimeout(r, 5));
  }
  expect(pacer.pace.batchEvents).toBe(LIVE_BATCH_EVENTS);
  pacer.stop();
  expect(pacer.pace).toBe(FULL_SPEED);
});

test('the pause is exported as ce_audit_delivery_pace_pause_seconds (0 without a pacer or when not paused)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pacer-'));
  const spool = await RegionSpool.open({ dir: path.join(dir, 'spool'), fsync: false, segmentBytes: 1 << 20, consumers: ['file'] });
  const sink: Sink = {
    name: 'file',
    maxBatchEvents: 10,
    maxBatchBytes: 1 << 20,
    send: async () => ({ kind: 'delivered' }),
    close: async () => undefined,
  };
  const deadLetters = new DeadLetters(
    path.join(dir, 'dlq'),
    (t) => t,
    () => undefined,
  );
  const source = { pace: { batchEvents: LIVE_BATCH_EVENTS, maxInFlight: 1, gapMs: 25, recordRate: 400 } as Pace };
  const delivery = (pacer?: { pace: Pace }): DeliveryMetrics => {
    const metrics = new DeliveryMetrics();
    new Delivery({
      config: loadConfig({}),
      spools: new Map([['us-south', spool]]),
      createSink: () => sink,
      deadLetters,
      metrics,
      logger: pino({ level: 'silent' }),
      scrub: (t) => t,
      pacer,
    });
    return metrics;
  };
  try {
    const paced = delivery(source);
    expect(await paced.registry.metrics()).toMatch(/^ce_audit_delivery_pace_pause_seconds 0\.025$/m);
    source.pace = FULL_SPEED;
    expect(await paced.registry.metrics()).toMatch(/^ce_audit_delivery_pace_pause_seconds 0$/m);
    expect(await delivery(undefined).registry.metrics()).toMatch(/^ce_audit_delivery_pace_pause_seconds 0$/m);
  } finally {
    await spool.close();
    await deadLetters.close();
    await rm(dir, { recursive: true, force: true });
  }
});
