/**
 * The delivery worker against a real spool and a scripted sink: batching, retries, splitting, partial
 * results, dead letters, and that the cursor only moves once a whole batch is settled.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { backoffDelay, parseRetryAfter } from '../../src/delivery/backoff';
import { DeadLetters, secretScrubber } from '../../src/delivery/dead-letter';
import { FULL_SPEED, type Pace } from '../../src/delivery/pacer';
import type { SendResult, Sink, SinkBatch } from '../../src/delivery/sinks/sink';
import { DeliveryWorker, type SpoolReader } from '../../src/delivery/worker';
import { DeliveryMetrics } from '../../src/metrics';
import { RegionSpool } from '../../src/spool/region-spool';
import { until } from '../support/load';

let dir: string;
let spool: RegionSpool;
let deadLetters: DeadLetters;
let metrics: DeliveryMetrics;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'worker-'));
  spool = await RegionSpool.open({ dir: path.join(dir, 'spool'), fsync: false, segmentBytes: 1 << 20, consumers: ['logdna'] });
  deadLetters = new DeadLetters(path.join(dir, 'dlq'), secretScrubber(['sekret-key-value']), () => undefined);
  metrics = new DeliveryMetrics();
});
afterEach(async () => {
  await spool.close();
  await deadLetters.close();
  await rm(dir, { recursive: true, force: true });
});

class ScriptedSink implements Sink {
  readonly name = 'logdna' as const;
  readonly maxBatchEvents = 1000;
  readonly maxBatchBytes = 1 << 20;
  readonly batches: number[][] = [];
  constructor(
    private readonly script: (batch: SinkBatch, call: number) => SendResult,
    /** How long each request takes. */
    private readonly delayMs = 0,
  ) {}
  async send(batch: SinkBatch): Promise<SendResult> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    this.batches.push(batch.records.map((r) => (JSON.parse(r.json) as { n: number }).n));
    return this.script(batch, this.batches.length);
  }
  async close(): Promise<void> {}
}

function worker(
  sink: Sink,
  overrides: { maxEvents?: number; maxWaitMs?: number; spool?: SpoolReader; logger?: pino.Logger; pace?: { pace: Pace } } = {},
): DeliveryWorker {
  return new DeliveryWorker({
    region: 'us-south',
    sink,
    spool: overrides.spool ?? spool,
    maxEvents: overrides.maxEvents ?? 10,
    maxBytes: 1 << 20,
    maxWaitMs: overrides.maxWaitMs ?? 0,
    retryBaseMs: 5,
    retryMaxMs: 20,
    sendTimeoutMs: 1000,
    deadLetters,
    metrics,
    logger: overrides.logger ?? pino({ level: 'silent' }),
    scrub: secretScrubber(['sekret-key-value']),
    pacer: overrides.pace,
  });
}

async function append(from: number, count: number, timestampMs = Date.now()): Promise<void> {
  await Promise.all(
    Array.from({ length: count }, (_, i) => spool.append({ timestampMs, severity: 'normal', json: JSON.stringify({ n: from + i }) })),
  );
}

/** Events of a minute ago: a backlog. */
function appendOld(from: number, count: number): Promise<void> {
  return append(from, count, Date.now() - 60_000);
}

/** Starts the worker and waits until it delivered everything in the spool; resolves with the milliseconds that took. */
async function drained(w: DeliveryWorker, timeoutMs = 3000): Promise<number> {
  const started = Date.now();
  w.start();
  expect(await until(() => spool.pending('logdna') === 0, timeoutMs)).toBe(true);
  return Date.now() - started;
}

/** A pace while calls are served: one request at a time, no pause, no recording rate, unless overridden. */
function paced(overrides: Partial<Pace> = {}): Pace {
  return { batchEvents: 3, maxInFlight: 1, gapMs: 0, recordRate: 0, ...overrides };
}

async function counter(c: { get: () => Promise<{ values: Array<{ value: number }> }> }): Promise<number> {
  return (await c.get()).values.reduce((s, v) => s + v.value, 0);
}

async function deadLettered(): Promise<Array<{ reason: string; status: number; event: { n: number } }>> {
  const text = await readFile(deadLetters.fileFor('us-south', 'logdna'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { reason: string; status: number; event: { n: number } });
}

test('batches of at most maxEvents, in order, and the cursor follows', async () => {
  const sink = new ScriptedSink(() => ({ kind: 'delivered' }));
  await append(0, 25);
  const w = worker(sink);
  w.start();
  expect(await until(() => spool.pending('logdna') === 0, 3000)).toBe(true);
  await w.stop();
  expect(sink.batches.map((b) => b.length)).toEqual([10, 10, 5]);
  expect(sink.batches.flat()).toEqual(Array.from({ length: 25 }, (_, i) => i));
  expect(await counter(metrics.eventsDelivered)).toBe(25);
});

test('a partial batch waits up to maxWaitMs to fill', async () => {
  const sink = new ScriptedSink(() => ({ kind: 'delivered' }));
  const w = worker(sink, { maxWaitMs: 300 });
  w.start();
  await append(0, 3);
  await new Promise((r) => setTimeout(r, 100));
  await append(3, 3);
  expect(await until(() => sink.batches.length === 1, 2000)).toBe(true);
  await w.stop();
  expect(sink.batches).toEqual([[0, 1, 2, 3, 4, 5]]);
});

test('retry until delivered; the cursor does not move while a batch is unsettled', async () => {
  let fail = true;
  const sink = new ScriptedSink(() => (fail ? { kind: 'retry', reason: 'HTTP 503', status: 503 } : { kind: 'delivered' }));
  await append(0, 4);
  const w = worker(sink);
  w.start();
  expect(await until(() => sink.batches.length >= 3, 2000)).toBe(true);
  expect(spool.pending('logdna')).toBe(4);
  expect(w.failingFor()).toBeGreaterThan(0);
  fail = false;
  expect(await until(() => spool.pending('logdna') === 0, 2000)).toBe(true);
  expect(w.failingFor()).toBe(0);
  await w.stop();
  expect(await counter(metrics.eventsRetried)).toBeGreaterThanOrEqual(8);
});

test('413: split in halves; a single event still too large is dead-lettered', async () => {
  const sink = new ScriptedSink((batch) =>
    batch.records.some((r) => (JSON.parse(r.json) as { n: number }).n === 5)
      ? { kind: 'too-large', reason: 'HTTP 413', status: 413 }
      : { kind: 'delivered' },
  );
  await append(0, 8);
  const w = worker(sink);
  w.start();
  expect(await until(() => spool.pending('logdna') === 0, 3000)).toBe(true);
  await w.stop();
  expect(sink.batches).toEqual([[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [6, 7]]);
  const letters = await deadLettered();
  expect(letters.map((l) => l.event.n)).toEqual([5]);
  expect(letters[0]?.reason).toMatch(/single event larger than the API accepts/);
});

test('partial: refused events dead-lettered, retryable ones sent again alone', async () => {
  const sink = new ScriptedSink((_b, call) =>
    call === 1
      ? {
          kind: 'partial',
          failed: [
            { index: 1, retry: false, reason: 'line 1: invalid timestamp', status: 400 },
            { index: 2, retry: true, reason: 'line 2: busy', status: 503 },
          ],
        }
      : { kind: 'delivered' },
  );
  await append(0, 4);
  const w = worker(sink);
  w.start();
  expect(await until(() => spool.pending('logdna') === 0, 3000)).toBe(true);
  await w.stop();
  expect(sink.batches).toEqual([[0, 1, 2, 3], [2]]);
  expect((await deadLettered()).map((l) => [l.event.n, l.status])).toEqual([[1, 400]]);
  expect(await counter(metrics.eventsDelivered)).toBe(3);
});

test('rejected: the batch goes to the dead-letter file with the reason, scrubbed of secrets, and delivery goes on', async () => {
  const sink = new ScriptedSink((_b, call) =>
    call === 1 ? { kind: 'rejected', reason: 'HTTP 401: bad key sekret-key-value', status: 401 } : { kind: 'delivered' },
  );
  await append(0, 3);
  const w = worker(sink, { maxEvents: 3 });
  w.start();
  expect(await until(() => spool.pending('logdna') === 0, 2000)).toBe(true);
  await append(3, 2);
  expect(await until(() => spool.pending('logdna') === 0 && sink.batches.length === 2, 2000)).toBe(true);
  await w.stop();
  const letters = await deadLettered();
  expect(letters.map((l) => l.event.n)).toEqual([0, 1, 2]);
  expect(letters[0]?.reason).toBe('HTTP 401: bad key [REDACTED]');
  expect(await counter(metrics.eventsDeadLettered)).toBe(3);
});

test('stop during retries leaves the batch in the spool for the next start', async () => {
  const sink = new ScriptedSink(() => ({ kind: 'retry', reason: 'down' }));
  await append(0, 5);
  const w = worker(sink);
  w.start();
  expect(await until(() => sink.batches.length >= 2, 2000)).toBe(true);
  await w.stop();
  expect(spool.pending('logdna')).toBe(5);
  const next = new ScriptedSink(() => ({ kind: 'delivered' }));
  const w2 = worker(next);
  w2.start();
  expect(await until(() => spool.pending('logdna') === 0, 2000)).toBe(true);
  await w2.stop();
  expect(next.batches.flat()).toEqual([0, 1, 2, 3, 4]);
});

/** A sink whose requests stay open until the test answers them, in any order. */
class GatedSink implements Sink {
  readonly name = 'logdna' as const;
  readonly maxBatchEvents = 1000;
  readonly maxBatchBytes = 1 << 20;
  readonly open: Array<{ first: number; answer: (r: SendResult) => void }> = [];
  readonly sent: number[][] = [];
  concurrent = 0;
  maxConcurrent = 0;
  async send(batch: SinkBatch): Promise<SendResult> {
    const ns = batch.records.map((r) => (JSON.parse(r.json) as { n: number }).n);
    this.sent.push(ns);
    this.concurrent++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.concurrent);
    try {
      return await new Promise<SendResult>((answer) => this.open.push({ first: ns[0] as number, answer }));
    } finally {
      this.concurrent--;
    }
  }
  answer(first: number, result: SendResult = { kind: 'delivered' }): void {
    const i = this.open.findIndex((o) => o.first === first);
    if (i < 0) throw new Error(`no open request starting at ${first}`);
    const [o] = this.open.splice(i, 1);
    o?.answer(result);
  }
  async close(): Promise<void> {}
}

/** A backlog of `events`, and a worker started on it with a GatedSink, once its first two requests are open. */
async function twoOpen(events: number): Promise<{ sink: GatedSink; w: DeliveryWorker }> {
  const sink = new GatedSink();
  await append(0, events);
  const w = worker(sink);
  w.start();
  expect(await until(() => sink.open.length === 2, 2000)).toBe(true);
  return { sink, w };
}

test('a backlog goes out two requests at a time, and is acknowledged in order', async () => {
  const { sink, w } = await twoOpen(30);
  await new Promise((r) => setTimeout(r, 50));
  // Never a third while two are open.
  expect(sink.open.map((o) => o.first)).toEqual([0, 10]);
  // The newer one answers first: the cursor cannot pass the older one, still open.
  sink.answer(10);
  await new Promise((r) => setTimeout(r, 50));
  expect(spool.pending('logdna')).toBe(30);
  expect(sink.open.map((o) => o.first)).toEqual([0]);
  sink.answer(0);
  expect(await until(() => spool.pending('logdna') === 10, 2000)).toBe(true);
  expect(await until(() => sink.open.length === 1, 2000)).toBe(true);
  sink.answer(20);
  expect(await until(() => spool.pending('logdna') === 0, 2000)).toBe(true);
  await w.stop();
  expect(sink.maxConcurrent).toBe(2);
  expect(sink.sent.flat()).toEqual(Array.from({ length: 30 }, (_, i) => i));
  expect(await counter(metrics.eventsDelivered)).toBe(30);
});

test('a failing sink: both requests are retried on their own, and the cursor waits for the older one', async () => {
  const { sink, w } = await twoOpen(40);
  sink.answer(0, { kind: 'retry', reason: 'HTTP 503', status: 503 });
  sink.answer(10, { kind: 'retry', reason: 'HTTP 503', status: 503 });
  // Each is sent again after its backoff; no third batch while both are open.
  expect(await until(() => sink.open.length === 2 && sink.sent.length === 4, 2000)).toBe(true);
  expect(sink.open.map((o) => o.first).sort((a, b) => a - b)).toEqual([0, 10]);
  expect(w.failingFor()).toBeGreaterThan(0);
  sink.answer(10);
  await new Promise((r) => setTimeout(r, 50));
  expect(sink.open.map((o) => o.first)).toEqual([0]);
  expect(spool.pending('logdna')).toBe(40);
  sink.answer(0);
  expect(await until(() => spool.pending('logdna') === 20, 2000)).toBe(true);
  expect(await until(() => sink.open.length === 2, 2000)).toBe(true);
  sink.answer(20);
  sink.answer(30);
  expect(await until(() => spool.pending('logdna') === 0, 2000)).toBe(true);
  await w.stop();
  expect(sink.maxConcurrent).toBe(2);
  const firsts = sink.sent.map((b) => b[0] as number);
  expect(firsts.slice(0, 2)).toEqual([0, 10]);
  expect(firsts.slice(2, 4).sort((a, b) => a - b)).toEqual([0, 10]);
  expect(firsts.slice(4)).toEqual([20, 30]);
  expect(new Set(sink.sent.flat()).size).toBe(40);
  expect(await counter(metrics.eventsDelivered)).toBe(40);
});

test('stop with two requests open leaves both batches in the spool', async () => {
  const { sink, w } = await twoOpen(20);
  const stopping = w.stop();
  // The sink answers only after the stop (real sinks see their request aborted and answer retry).
  sink.answer(10, { kind: 'retry', reason: 'aborted' });
  sink.answer(0, { kind: 'retry', reason: 'aborted' });
  await stopping;
  expect(spool.pending('logdna')).toBe(20);
});

test('a spool read failing while a request is open stops the worker now, not after that request is retried out', async () => {
  const sink = new GatedSink();
  await append(0, 20);
  let reads = 0;
  // The first read feeds the first request; the read-ahead during it fails.
  const failing: SpoolReader = {
    read: (from, maxEvents, maxBytes) => (++reads === 1 ? spool.read(from, maxEvents, maxBytes) : Promise.reject(new Error('EIO'))),
    cursor: (c) => spool.cursor(c),
    acknowledge: (c, next) => spool.acknowledge(c, next),
    onDurable: (l) => spool.onDurable(l),
    get endPosition() {
      return spool.endPosition;
    },
    pending: (c) => spool.pending(c),
  };
  const fatal: string[] = [];
  const logger = pino({ level: 'fatal' }, { write: (line: string) => fatal.push(line) });
  const w = worker(sink, { spool: failing, logger });
  w.start();
  expect(await until(() => sink.open.length === 1 && reads >= 2, 2000)).toBe(true);
  // That request fails: it is not sent again, the worker has stopped and says why.
  sink.answer(0, { kind: 'retry', reason: 'HTTP 503', status: 503 });
  expect(await until(() => fatal.length === 1, 2000)).toBe(true);
  await new Promise((r) => setTimeout(r, 100));
  expect(sink.sent.length).toBe(1);
  expect(fatal[0]).toContain('EIO');
  expect(spool.pending('logdna')).toBe(20);
  await w.stop();
});

test("a backlog's last events are sent at once, not held back for maxWaitMs; live events still wait", async () => {
  const sink = new ScriptedSink(() => ({ kind: 'delivered' }));
  await appendOld(0, 3);
  const w = worker(sink, { maxWaitMs: 5000 });
  expect(await drained(w, 2000)).toBeLessThan(1000);
  await append(3, 2);
  await new Promise((r) => setTimeout(r, 300));
  // Fresh events: held for company (up to 5 s here).
  expect(sink.batches).toEqual([[0, 1, 2]]);
  await w.stop();
});
describe('paced while calls are being served', () => {
  test('a worker that keeps up is not paced: fresh events go in full batches, without pauses', async () => {
    const sink = new ScriptedSink(() => ({ kind: 'delivered' }));
    await append(0, 25);
    const w = worker(sink, { pace: { pace: paced({ gapMs: 1000 }) } });
    expect(await drained(w)).toBeLessThan(900);
    await w.stop();
    expect(sink.batches.map((b) => b.length)).toEqual([10, 10, 5]);
  });

  test('smaller batches, one request at a time; back to full batches and two requests when the pace lifts', async () => {
    const pace = { pace: paced() };
    const sink = new GatedSink();
    await appendOld(0, 40);
    const w = worker(sink, { pace });
    w.start();
    for (const first of [0, 3, 6]) {
      expect(await until(() => sink.open.length === 1 && sink.open[0]?.first === first, 2000)).toBe(true);
      await new Promise((r) => setTimeout(r, 30));
      // Only one open while paced, even with a backlog behind it.
      expect(sink.open.map((o) => o.first)).toEqual([first]);
      sink.answer(first);
    }
    expect(await until(() => sink.open.length === 1 && sink.open[0]?.first === 9, 2000)).toBe(true);
    // The pace lifts: full batches of ten, two requests open.
    pace.pace = FULL_SPEED;
    sink.answer(9);
    expect(await until(() => sink.open.length === 2, 2000)).toBe(true);
    sink.answer(12);
    sink.answer(22);
    expect(await until(() => sink.open.length === 1 && sink.open[0]?.first === 32, 2000)).toBe(true);
    sink.answer(32);
    expect(await until(() => spool.pending('logdna') === 0, 2000)).toBe(true);
    await w.stop();
    expect(sink.maxConcurrent).toBe(2);
    expect(sink.sent).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6, 7, 8],
      [9, 10, 11],
      Array.from({ length: 10 }, (_, i) => 12 + i),
      Array.from({ length: 10 }, (_, i) => 22 + i),
      Array.from({ length: 8 }, (_, i) => 32 + i),
    ]);
    expect(await counter(metrics.eventsDelivered)).toBe(40);
  });

  test('events read ahead at full speed go out in paced batches once calls begin, in order, each once', async () => {
    const pace = { pace: FULL_SPEED };
    const sink = new GatedSink();
    await appendOld(0, 25);
    const w = worker(sink, { pace });
    w.start();
    expect(await until(() => sink.open.length === 2, 2000)).toBe(true);
    sink.answer(0);
    // The last five are read ahead while the second request is open; then calls begin: batches of two.
    await new Promise((r) => setTimeout(r, 50));
    pace.pace = paced({ batchEvents: 2 });
    for (const first of [10, 20, 22, 24]) {
      expect(await until(() => sink.open.length === 1 && sink.open[0]?.first === first, 2000)).toBe(true);
      sink.answer(first);
    }
    expect(await until(() => spool.pending('logdna') === 0, 2000)).toBe(true);
    await w.stop();
    expect(sink.sent.map((b) => b.length)).toEqual([10, 10, 2, 2, 1]);
    expect(sink.sent.flat()).toEqual(Array.from({ length: 25 }, (_, i) => i));
  });

  test('a slow sink gets bigger paced batches: each must carry twice the events recorded per round trip', async () => {
    // 60 ms per request; calls record 100 events/s: a paced batch must hold ceil(2 * 100 * 0.06) = 12 events.
    const sink = new ScriptedSink(() => ({ kind: 'delivered' }), 60);
    await appendOld(0, 40);
    const w = worker(sink, { maxEvents: 20, pace: { pace: paced({ recordRate: 100 }) } });
    await drained(w);
    await w.stop();
    // The first batch is paced before any round trip was measured; then the round trip counts.
    expect(sink.batches[0]).toHaveLength(3);
    expect(sink.batches.slice(1, -1).every((b) => b.length >= 12)).toBe(true);
    expect(sink.batches.flat()).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  test('when even a full batch per round trip could not keep up with the calls, the worker is not paced', async () => {
    const sink = new GatedSink();
    await appendOld(0, 30);
    // 1,000 events/s recorded: any round trip over 5 ms would need more than the 10-event batches allowed.
    const w = worker(sink, { pace: { pace: paced({ recordRate: 1000 }) } });
    w.start();
    expect(await until(() => sink.open.length === 1, 2000)).toBe(true);
    await new Promise((r) => setTimeout(r, 30));
    sink.answer(0);
    // The first request took 30 ms: full batches, two at a time.
    expect(await until(() => sink.open.length === 2, 2000)).toBe(true);
    expect(sink.open.map((o) => o.first)).toEqual([3, 13]);
    sink.answer(3);
    sink.answer(13);
    expect(await until(() => sink.open.length === 1, 2000)).toBe(true);
    sink.answer(23);
    expect(await until(() => spool.pending('logdna') === 0, 2000)).toBe(true);
    await w.stop();
    expect(sink.sent.map((b) => b.length)).toEqual([3, 10, 10, 7]);
  });

  test('the pause between batches is kept, and stopping during it leaves the batch in the spool', async () => {
    const sink = new ScriptedSink(() => ({ kind: 'delivered' }));
    await appendOld(0, 4);
    const w = worker(sink, { pace: { pace: paced({ batchEvents: 1, gapMs: 80 }) } });
    // Four batches, each after an 80 ms pause (timers may fire a millisecond early).
    expect(await drained(w)).toBeGreaterThanOrEqual(4 * 80 - 5);
    expect(sink.batches).toEqual([[0], [1], [2], [3]]);
    await appendOld(4, 1);
    await new Promise((r) => setTimeout(r, 20));
    const stopping = Date.now();
    await w.stop();
    expect(Date.now() - stopping).toBeLessThan(60);
    expect(sink.batches.length).toBe(4);
    expect(spool.pending('logdna')).toBe(1);
  });
});

describe('backoff', () => {
  test('full jitter: below base * 2^attempt, capped; Retry-After wins', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const d = backoffDelay(attempt, 100, 5000, undefined);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(Math.min(5000, 100 * 2 ** attempt));
    }
    expect(backoffDelay(3, 100, 5000, undefined, () => 0.999)).toBe(799);
    expect(backoffDelay(0, 100, 5000, 7000)).toBe(7000);
    expect(backoffDelay(0, 100, 5000, 24 * 3600 * 1000)).toBe(10 * 60 * 1000);
  });

  test('Retry-After: seconds or an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 10)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(10_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});
