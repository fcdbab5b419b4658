import type { Logger } from 'pino';
import type { DeliveryMetrics } from '../metrics';
import type { SpoolPosition, SpoolRecord } from '../spool/types';
import type { Region } from '../types';
import { backoffDelay } from './backoff';
import type { DeadLetters } from './dead-letter';
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
}

export function positionAtOrAfter(a: SpoolPosition, b: SpoolPosition): boolean {
  return a.segment > b.segment || (a.segment === b.segment && a.offset >= b.offset);
}

/** Largest event (16 KB) plus room: a batch this close to its byte limit counts as full. */
const FULL_MARGIN_BYTES = 17 * 1024;

/**
 * Delivers one region's events to one sink, in order, from the spool, at least once: a batch's events are
 * acknowledged (the sink's cursor moves past them) only once every one of them was delivered or
 * dead-lettered. One request in flight; a failed request is retried with backoff until it succeeds, for as
 * long as the gateway runs.
 */
export class DeliveryWorker {
  private stopped = false;
  private readonly abort = new AbortController();
  /** Ends the current wait: on new durable events (unless backing off), on flush, on stop. */
  private wake: (() => void) | undefined;
  private backingOff = false;
  private unsubscribe: (() => void) | undefined;
  private done: Promise<void> = Promise.resolve();
  private readPos: SpoolPosition;
  private held: SpoolRecord[] = [];
  private heldBytes = 0;
  private firstHeldAt: number | undefined;
  private inFlight: readonly SpoolRecord[] = [];
  private urgent = false;
  private failingSince: number | undefined;
  private lastFailure: string | undefined;
  private failuresLogged = 0;
  private readonly maxEvents: number;
  private readonly maxBytes: number;

  constructor(private readonly o: WorkerOptions) {
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
    this.unsubscribe = this.o.spool.onDurable(() => {
      if (!this.backingOff) this.wake?.();
    });
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
    const first = this.inFlight[0] ?? this.held[0];
    if (first) return first.timestampMs;
    if (this.o.spool.pending(this.o.sink.name) === 0) return undefined;
    const [next] = await this.o.spool.read(this.o.spool.cursor(this.o.sink.name), 1, 1);
    return next?.timestampMs;
  }

  /** Send without waiting for batches to fill (shutdown), and resolve once caught up with the spool, or at the deadline. */
  async flush(deadline: number): Promise<boolean> {
    this.urgent = true;
    if (!this.backingOff) this.wake?.();
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
    this.wake?.();
    this.unsubscribe?.();
    await this.done;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const batch = await this.nextBatch();
      if (!batch) continue;
      this.inFlight = batch;
      const complete = await this.deliver(batch);
      this.inFlight = [];
      if (!complete) return;
      await this.o.spool.acknowledge(this.o.sink.name, (batch[batch.length - 1] as SpoolRecord).next);
    }
  }

  /** The next batch to send, or undefined after waiting (for events, or for a partial batch to fill). */
  private async nextBatch(): Promise<SpoolRecord[] | undefined> {
    if (this.held.length < this.maxEvents && this.heldBytes + FULL_MARGIN_BYTES <= this.maxBytes) {
      const more = await this.o.spool.read(this.readPos, this.maxEvents - this.held.length, Math.max(1, this.maxBytes - this.heldBytes));
      for (const r of more) {
        this.held.push(r);
        this.heldBytes += Buffer.byteLength(r.json);
      }
      const last = more[more.length - 1];
      if (last) this.readPos = last.next;
    }
    if (this.held.length === 0) {
      await this.sleep(undefined);
      return undefined;
    }
    const full = this.held.length >= this.maxEvents || this.heldBytes + FULL_MARGIN_BYTES > this.maxBytes;
    if (!full && !this.urgent && this.o.maxWaitMs > 0) {
      this.firstHeldAt ??= Date.now();
      const remaining = this.firstHeldAt + this.o.maxWaitMs - Date.now();
      if (remaining > 0) {
        await this.sleep(remaining);
        return undefined;
      }
    }
    const batch = this.held;
    this.held = [];
    this.heldBytes = 0;
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
    try {
      return await this.o.sink.send({ region: this.o.region, records }, signal);
    } catch (err) {
      // Sinks are written not to throw; if one does, the batch is retried rather than lost.
      return { kind: 'retry', reason: `sink error: ${(err as Error).message}` };
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
  private async backoff(ms: number): Promise<void> {
    this.backingOff = true;
    try {
      await this.sleep(ms);
    } finally {
      this.backingOff = false;
    }
  }

  /** Wait for `ms` (undefined: until woken), or until new events are durable, or until stopped. */
  private sleep(ms: number | undefined): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      function done(): void {
        if (timer) clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }
}
