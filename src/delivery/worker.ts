import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { DeliveryMetrics } from '../metrics';
import { payloadBytes } from '../spool/record-codec';
import type { SpoolPosition, SpoolRecord } from '../spool/types';
import type { Region } from '../types';
import { backoffDelay } from './backoff';
import type { DeadLetters } from './dead-letter';
import { FULL_SPEED, type Pace, type PaceSource } from './pacer';
import type { SendResult, Sink } from './sinks/sink';

/** What a worker needs of its region's spool. */
export interface SpoolReader {
  read(from: SpoolPosition, maxEvents: number, maxBytes: number): Promise<SpoolRecord[]>;
  cursor(consumer: string): SpoolPosition;
  acknowledge(consumer: string, next: SpoolPosition): Promise<void>;
  onDurable(listener: () => void): () => void;
  readonly endPosition: SpoolPosition;
  pending(consumer: string): number;
}

export interface WorkerOptions {
  region: Region;
  sink: Sink;
  spool: SpoolReader;
  maxEvents: number;
  maxBytes: number;
  maxWaitMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  sendTimeoutMs: number;
  deadLetters: DeadLetters;
  metrics: DeliveryMetrics;
  logger: Logger;
  scrub: (text: string) => string;
  /** Batch size, requests in flight and pauses while calls are being served (default: always full speed). */
  pacer?: PaceSource;
}

export function positionAtOrAfter(a: SpoolPosition, b: SpoolPosition): boolean {
  return a.segment > b.segment || (a.segment === b.segment && a.offset >= b.offset);
}

/** A worker whose oldest unsent event is older than BATCH_MAX_WAIT_MS plus this is draining a backlog. */
const BEHIND_MARGIN_MS = 1000;

/** Largest event (16 KB) plus room: a batch this close to its byte limit counts as full. */
const FULL_MARGIN_BYTES = 17 * 1024;

/**
 * Delivers one region's events to one sink from the spool, at least once: batches are sent in order and
 * acknowledged in order (the sink's cursor moves past a batch only once every one of its events, and of the
 * batches before it, was delivered or dead-lettered). One request in flight when caught up, two during a
 * backlog (see loop), unless the pacer says otherwise while calls are being served (see pace); a failed
 * request is retried with backoff until it succeeds, for as long as the gateway runs.
 */
export class DeliveryWorker {
  private stopped = false;
  private readonly abort = new AbortController();
  /** End the idle waits (for events, or for a batch to fill): on new durable events, on flush, on stop. */
  private readonly idleWakers = new Set<() => void>();
  /** End the waits between retries: only on stop (new events must not speed retries up). */
  private readonly backoffWakers = new Set<() => void>();
  private unsubscribe: (() => void) | undefined;
  private done: Promise<void> = Promise.resolve();
  private readPos: SpoolPosition;
  private held: SpoolRecord[] = [];
  private heldBytes = 0;
  private firstHeldAt: number | undefined;
  /**
   * Batches sent and not yet acknowledged, oldest first (at most the pace's maxInFlight), each with its outcome, settled
   * into a value at once so that a failure (a dead-letter file that cannot be written) is not an unhandled
   * rejection while an older request is awaited; it is rethrown in order.
   */
  private readonly inFlight: Array<{ batch: SpoolRecord[]; outcome: Promise<{ complete: boolean } | { error: unknown }> }> = [];
  /** The last delivered batch's acknowledgement (its cursor save), awaited only when the loop ends. */
  private acknowledging: Promise<void> = Promise.resolve();
  private urgent = false;
  private failingSince: number | undefined;
  private lastFailure: string | undefined;
  private failuresLogged = 0;
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly pacer: PaceSource;
  private readonly behindAfterMs: number;
  /** How long a request to the sink takes, smoothed (0 until the first one). */
  private sendMs = 0;

  constructor(private readonly o: WorkerOptions) {
    this.pacer = o.pacer ?? { pace: FULL_SPEED };
    this.behindAfterMs = o.maxWaitMs + BEHIND_MARGIN_MS;
    this.readPos = o.spool.cursor(o.sink.name);
    this.maxEvents = Math.min(o.maxEvents, o.sink.maxBatchEvents);
    this.maxBytes = Math.min(o.maxBytes, o.sink.maxBatchBytes);
  }

  get name(): string {
    return `${this.o.region}/${this.o.sink.name}`;
  }

  get region(): Region {
    return this.o.region;
  }

  get sinkName(): string {
    return this.o.sink.name;
  }

  start(): void {
    this.unsubscribe = this.o.spool.onDurable(() => this.wakeIdle());
    this.done = this.loop().catch((err: unknown) => {
      this.o.logger.fatal({ err, worker: this.name }, 'delivery worker stopped unexpectedly');
    });
  }

  /** Milliseconds this sink has been failing without a success (0 when healthy). */
  failingFor(now = Date.now()): number {
    return this.failingSince === undefined ? 0 : now - this.failingSince;
  }

  get lastFailureReason(): string | undefined {
    return this.lastFailure;
  }

  /** Event time of the oldest event this worker has not delivered yet (undefined when caught up). */
  async oldestPendingTimestamp(): Promise<number | undefined> {
    const first = this.inFlight[0]?.batch[0] ?? this.held[0];
    if (first) return first.timestampMs;
    if (this.o.spool.pending(this.o.sink.name) === 0) return undefined;
    const [next] = await this.o.spool.read(this.o.spool.cursor(this.o.sink.name), 1, 1);
    return next?.timestampMs;
  }

  /** Send without waiting for batches to fill (shutdown), and resolve once caught up with the spool, or at the deadline. */
  async flush(deadline: number): Promise<boolean> {
    this.urgent = true;
    this.wakeIdle();
    const target = this.o.spool.endPosition;
    while (Date.now() < deadline && !this.stopped) {
      if (positionAtOrAfter(this.o.spool.cursor(this.o.sink.name), target)) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return positionAtOrAfter(this.o.spool.cursor(this.o.sink.name), target);
  }

  /** Stop now: a request in flight is aborted, and its events stay in the spool for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort(new Error('gateway stopping'));
    this.wakeIdle();
    for (const wake of [...this.backoffWakers]) wake();
    this.unsubscribe?.();
    await this.done;
  }

  /**
   * Sends batches in order and acknowledges them in order. While a batch is in flight the next one is read
   * from the spool, and when it is full (a backlog) it is sent too: two requests in flight let the gateway
   * build one body while Activity Tracker ingests the other, instead of each side waiting for the other.
   * A cursor is saved while the next batches go out (saves are coalesced by the spool; a cursor saved late
   * only means re-delivery after a crash, never loss).
   */
  private async loop(): Promise<void> {
    const { inFlight } = this;
    try {
      while (!this.stopped) {
        let batch: SpoolRecord[] | undefined;
        if (inFlight.length === 0) {
          batch = await this.nextBatch();
          if (!batch) continue;
        } else {
          await this.fill();
          // Only a full batch: a partial one waits for its time (nextBatch) once nothing is in flight.
          if (inFlight.length < this.pace().maxInFlight && this.heldIsFull()) batch = this.takeHeld();
        }
        if (batch) {
          // Calls being served come first (see DeliveryPacer); stopping meanwhile leaves the batch unacknowledged.
          const { gapMs } = this.pace(batch[0]);
          if (gapMs > 0) await this.wait(gapMs, this.backoffWakers);
          if (this.stopped) break;
          const outcome = this.deliver(batch).then(
            (complete) => ({ complete }),
            (error: unknown) => ({ error }),
          );
          inFlight.push({ batch, outcome });
          if (inFlight.length < this.pace().maxInFlight) continue;
        }
        // The oldest request decides what happens next: acknowledged, or the loop ends (stopping).
        const oldest = inFlight[0] as (typeof inFlight)[number];
        const outcome = await oldest.outcome;
        inFlight.shift();
        if ('error' in outcome) throw outcome.error;
        if (!outcome.complete) return;
        this.acknowledging = this.o.spool
          .acknowledge(this.o.sink.name, (oldest.batch[oldest.batch.length - 1] as SpoolRecord).next)
          .catch((err: unknown) => {
            // Only a closed spool refuses; the events stay unacknowledged and are delivered again next time.
            if (!this.stopped) this.o.logger.warn({ worker: this.name, err: { message: (err as Error).message } }, 'cursor not saved');
          });
      }
    } catch (err) {
      // The worker cannot go on: its other request is stopped too, so the failure is reported now, not once
      // that request has been retried to the end. Its events stay unacknowledged.
      this.stopped = true;
      this.abort.abort(err);
      throw err;
    } finally {
      // Stopping: a request still in flight is aborted by stop(); its events stay unacknowledged.
      await Promise.all(inFlight.map((f) => f.outcome));
      inFlight.length = 0;
      await this.acknowledging;
    }
  }

  /** Reads what the spool has after `readPos` into `held`, up to one full batch. */
  private async fill(): Promise<void> {
    if (this.heldIsFull()) return;
    const more = await this.o.spool.read(this.readPos, this.batchEvents() - this.held.length, Math.max(1, this.maxBytes - this.heldBytes));
    for (const r of more) {
      this.held.push(r);
      this.heldBytes += payloadBytes(r.size);
    }
    const last = more[more.length - 1];
    if (last) this.readPos = last.next;
  }

  /** The next batch to send, or undefined after waiting (for events, or for a partial batch to fill). */
  private async nextBatch(): Promise<SpoolRecord[] | undefined> {
    await this.fill();
    if (this.held.length === 0) {
      await this.sleep(undefined);
      return undefined;
    }
    if (!this.heldIsFull() && !this.urgent && this.o.maxWaitMs > 0) {
      // Counted from the oldest event's own time: live events wait up to maxWaitMs for company, while the last
      // events of a backlog, already older than that, go out at once.
      this.firstHeldAt ??= Math.min(Date.now(), (this.held[0] as SpoolRecord).timestampMs);
      const remaining = this.firstHeldAt + this.o.maxWaitMs - Date.now();
      if (remaining > 0) {
        await this.sleep(remaining);
        return undefined;
      }
    }
    return this.takeHeld();
  }

  /**
   * The pacer's limits apply only while this worker drains a backlog (its oldest unsent event is older than a
   * batch would ever wait): a worker that keeps up sends what calls record as it comes, in full batches, since
   * smaller ones would only add requests (measured: 5-6% fewer calls/s at saturation).
   */
  private pace(oldest = this.held[0] ?? this.inFlight[this.inFlight.length - 1]?.batch[0]): Pace {
    if (oldest === undefined || Date.now() - oldest.timestampMs <= this.behindAfterMs) return FULL_SPEED;
    const pace = this.pacer.pace;
    if (pace.batchEvents === undefined) return pace;
    // One paced batch per pause and round trip must still carry twice the events recorded meanwhile: a slow
    // (remote) sink gets bigger batches, and when even a full one cannot keep that rate, no pacing.
    const needed = Math.ceil((2 * pace.recordRate * (pace.gapMs + this.sendMs)) / 1000);
    if (needed > this.maxEvents) return FULL_SPEED;
    return needed > pace.batchEvents ? { ...pace, batchEvents: needed } : pace;
  }

  /** Events per batch: the configured size, or fewer while a backlog drains and calls are being served. */
  private batchEvents(): number {
    return Math.min(this.maxEvents, this.pace().batchEvents ?? this.maxEvents);
  }

  private heldIsFull(): boolean {
    return this.held.length >= this.batchEvents() || this.heldBytes + FULL_MARGIN_BYTES > this.maxBytes;
  }

  /** The held events, up to one batch (more may be held when they were read before calls began). */
  private takeHeld(): SpoolRecord[] {
    const limit = this.batchEvents();
    if (this.held.length <= limit) {
      const batch = this.held;
      this.held = [];
      this.heldBytes = 0;
      this.firstHeldAt = undefined;
      return batch;
    }
    const batch = this.held.splice(0, limit);
    for (const r of batch) this.heldBytes -= payloadBytes(r.size);
    this.firstHeldAt = undefined;
    return batch;
  }

  /** Resolves true once every event of the batch is delivered or dead-lettered; false if stopped first. */
  private async deliver(batch: SpoolRecord[]): Promise<boolean> {
    const queue: SpoolRecord[][] = [batch];
    let attempt = 0;
    while (queue.length > 0) {
      if (this.stopped) return false;
      const part = queue[0] as SpoolRecord[];
      const result = await this.send(part);
      if (this.stopped && result.kind === 'retry') return false;
      switch (result.kind) {
        case 'delivered':
          queue.shift();
          this.delivered(part.length);
          attempt = 0;
          break;
        case 'retry':
          this.failed(part.length, result.reason, result.status);
          await this.backoff(backoffDelay(attempt++, this.o.retryBaseMs, this.o.retryMaxMs, result.retryAfterMs));
          break;
        case 'too-large':
          if (part.length > 1) {
            const mid = Math.ceil(part.length / 2);
            queue.splice(0, 1, part.slice(0, mid), part.slice(mid));
          } else {
            queue.shift();
            await this.deadLetter(part, `${result.reason} (a single event larger than the API accepts)`, result.status);
          }
          break;
        case 'partial': {
          const retry = result.failed.filter((f) => f.retry).map((f) => part[f.index] as SpoolRecord);
          const refused = result.failed.filter((f) => !f.retry);
          this.delivered(part.length - result.failed.length);
          for (const f of refused) await this.deadLetter([part[f.index] as SpoolRecord], f.reason, f.status);
          if (retry.length === 0) {
            queue.shift();
            attempt = 0;
          } else {
            queue[0] = retry;
            const first = result.failed.find((f) => f.retry);
            this.failed(retry.length, `${retry.length} of ${part.length} events not accepted: ${first?.reason ?? ''}`, first?.status);
            await this.backoff(backoffDelay(attempt++, this.o.retryBaseMs, this.o.retryMaxMs, undefined));
          }
          break;
        }
        case 'rejected':
          queue.shift();
          await this.deadLetter(part, result.reason, result.status);
          break;
      }
    }
    return true;
  }

  private async send(records: readonly SpoolRecord[]): Promise<SendResult> {
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.o.sendTimeoutMs)]);
    const started = performance.now();
    try {
      return await this.o.sink.send({ region: this.o.region, records }, signal);
    } catch (err) {
      // Sinks are written not to throw; if one does, the batch is retried rather than lost.
      return { kind: 'retry', reason: `sink error: ${(err as Error).message}` };
    } finally {
      const took = performance.now() - started;
      this.sendMs = this.sendMs === 0 ? took : 0.7 * this.sendMs + 0.3 * took;
    }
  }

  private delivered(count: number): void {
    if (count > 0) this.o.metrics.eventsDelivered.inc({ region: this.o.region, sink: this.o.sink.name }, count);
    if (this.failingSince !== undefined) {
      this.o.logger.info({ worker: this.name, failedForMs: this.failingFor() }, 'delivery recovered');
    }
    this.failingSince = undefined;
    this.lastFailure = undefined;
    this.failuresLogged = 0;
  }

  private failed(count: number, reason: string, status: number | undefined): void {
    this.o.metrics.eventsRetried.inc({ region: this.o.region, sink: this.o.sink.name }, count);
    this.markFailing(reason);
    // Log the first failure, then ever more rarely (1, 2, 4, 8, ... attempts) so an outage does not flood the log.
    this.failuresLogged++;
    if ((this.failuresLogged & (this.failuresLogged - 1)) === 0) {
      this.o.logger.warn(
        { worker: this.name, status, reason: this.o.scrub(reason), attempts: this.failuresLogged },
        'delivery failed; will retry',
      );
    }
  }

  private markFailing(reason: string): void {
    this.failingSince ??= Date.now();
    this.lastFailure = this.o.scrub(reason);
  }

  private async deadLetter(records: readonly SpoolRecord[], reason: string, status: number | undefined): Promise<void> {
    if (records.length === 0) return;
    const scrubbed = this.o.scrub(reason);
    await this.o.deadLetters.write({ region: this.o.region, sink: this.o.sink.name, reason: scrubbed, status, records });
    this.o.metrics.eventsDeadLettered.inc({ region: this.o.region, sink: this.o.sink.name }, records.length);
    if (status === 401 || status === 403) this.markFailing(scrubbed);
    this.o.logger.error(
      {
        worker: this.name,
        status,
        reason: scrubbed,
        events: records.length,
        file: this.o.deadLetters.fileFor(this.o.region, this.o.sink.name),
      },
      'events refused by the sink were moved to the dead-letter file',
    );
  }

  /** Wait before a retry: only stopping cuts it short (new events must not speed retries up). */
  private backoff(ms: number): Promise<void> {
    return this.wait(ms, this.backoffWakers);
  }

  /** Wait for `ms` (undefined: until woken), or until new events are durable, or a flush, or stop. */
  private sleep(ms: number | undefined): Promise<void> {
    return this.wait(ms, this.idleWakers);
  }

  private wakeIdle(): void {
    for (const wake of [...this.idleWakers]) wake();
  }

  private wait(ms: number | undefined, wakers: Set<() => void>): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      function done(): void {
        if (timer) clearTimeout(timer);
        wakers.delete(done);
        resolve();
      }
      wakers.add(done);
    });
  }
}
