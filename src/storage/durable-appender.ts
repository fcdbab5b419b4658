import { backoffDelay } from '../delivery/backoff';

/** What a DurableAppender writes with: the files of one spool region, or of the journal and dead letters. */
export interface AppendTarget<T> {
  /**
   * Writes the batch durably: all of it, or throws. Items committed before a failure may be marked by the target so that
   * the retry (which gets the same items again, in front of later arrivals) skips them.
   */
  commit(batch: readonly T[]): Promise<void>;
  /** Before each retry: files back to their last committed state (fresh descriptors, failed writes cut). May throw. */
  repair(): Promise<void>;
  /** Checked every `probeMs` while idle: throws when what is open can no longer be written as it is (a removed file). */
  probe?(): Promise<void>;
  /** Closes the files once the last batch is written (or given up). */
  finish(): Promise<void>;
}

export interface DurableAppenderOptions<T> {
  target: AppendTarget<T>;
  /** Bytes an item holds in memory while it waits (see pendingBytes). */
  sizeOf?: (item: T) => number;
  /** A failed attempt (commit, repair or probe), numbered from 1 until one succeeds. */
  onError: (err: Error, attempt: number) => void;
  /** Writes succeed again after failing for this long. */
  onRecovered?: (failedForMs: number) => void;
  /** Retry delays: exponential backoff with full jitter (backoffDelay), from `retryBaseMs` doubling up to `retryMaxMs`. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  probeMs?: number;
}

/** A disk that fails is retried at most this far apart, so writes resume within that long of the disk recovering. */
export const DEFAULT_RETRY_MAX_MS = 500;
const DEFAULT_RETRY_BASE_MS = 25;
const DEFAULT_PROBE_MS = 250;
/** After the close deadline, closing the files (cutting what a failed write left behind) may take this long. */
const FINISH_GRACE_MS = 250;
/** Without a deadline, close() gives up on a disk that keeps failing after this many more attempts. */
const ATTEMPTS_WHEN_CLOSING = 3;

export interface AppendFailure {
  since: number;
  error: Error;
  attempts: number;
}

interface Waiter<T> {
  item: T;
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * A wait that `cancel` ends early. It does not keep the process alive, unless `hold`: a close that has work to finish
 * (bounded by its deadline) must not see the process end under it because nothing else is left to run.
 */
function pause(ms: number, hold = false): { done: Promise<void>; cancel: () => void } {
  let cancel = (): void => undefined;
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, ms));
    if (!hold) timer.unref();
    cancel = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  return { done, cancel };
}

/**
 * The one durable-append primitive of the gateway (spool segments, journal, dead letters): group commit with retries.
 * Every item appended while a batch is being written joins the next batch, so one durable write serves many. A failed
 * batch is kept, in order, in front of later arrivals; the target repairs its files and the batch is retried with
 * jittered exponential backoff (capped at `retryMaxMs`, so writing resumes soon after the disk does), for as long as the
 * appender is open. While failing, `failure` says since when and why: callers decide what to admit meanwhile. No timer of
 * it keeps the process alive. `close(deadline)` stops retrying at the deadline and hands back what could not be written.
 */
export class DurableAppender<T> {
  private queue: Waiter<T>[] = [];
  private inFlight: Waiter<T>[] = [];
  private bytes = 0;
  private running = false;
  private needsRepair = false;
  private closing = false;
  private abandoned = false;
  private deadline = Infinity;
  private failed: AppendFailure | undefined;
  private writingSince: number | undefined;
  private idle: Promise<void> = Promise.resolve();
  private wakeIdle: () => void = () => undefined;
  private backoff: { cancel: () => void } | undefined;
  private readonly probeTimer: NodeJS.Timeout | undefined;
  private probing = false;

  constructor(private readonly o: DurableAppenderOptions<T>) {
    if (o.target.probe) {
      this.probeTimer = setInterval(() => void this.probe(), o.probeMs ?? DEFAULT_PROBE_MS);
      this.probeTimer.unref();
    }
  }

  /** Resolves once the item is durable; rejects only when the appender is closed (or gives up at its close deadline). */
  append(item: T): Promise<void> {
    if (this.closing) return Promise.reject(new Error('closed'));
    return new Promise<void>((resolve, reject) => {
      const bytes = this.o.sizeOf?.(item) ?? 0;
      this.bytes += bytes;
      this.queue.push({ item, bytes, resolve, reject });
      this.kick();
    });
  }

  /** Set while writes fail: since when, the last error, how many attempts. */
  get failure(): AppendFailure | undefined {
    return this.failed;
  }

  /** Items waiting or being written. */
  get pendingItems(): number {
    return this.queue.length + this.inFlight.length;
  }

  /** Bytes of the items waiting or being written (sizeOf). */
  get pendingBytes(): number {
    return this.bytes;
  }

  /** How long the write (or repair) in progress has been running; 0 when none is. */
  writingForMs(now = Date.now()): number {
    return this.writingSince === undefined ? 0 : now - this.writingSince;
  }

  /** Items not yet durable, oldest first. */
  unwritten(): T[] {
    return [...this.inFlight, ...this.queue].map((w) => w.item);
  }

  /**
   * Stops accepting, writes what is pending, closes the files. Retries go on until `deadline` (epoch ms); without one, a
   * disk that keeps failing is given up after a few more attempts. Returns the items that could not be written (their
   * appends reject). Never waits past the deadline (plus FINISH_GRACE_MS to close files), even for a write that never
   * returns.
   */
  async close(deadline?: number): Promise<T[]> {
    this.closing = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (deadline !== undefined) this.deadline = Math.min(this.deadline, deadline);
    // A retry waiting out its backoff starts now if that wait would run past the deadline.
    if (this.deadline !== Infinity) this.backoff?.cancel();
    if (this.running) await this.within(this.idle);
    const left = [...this.inFlight, ...this.queue];
    if (left.length > 0) {
      this.abandoned = true;
      this.queue = [];
      this.inFlight = [];
      this.bytes = 0;
      this.backoff?.cancel();
      const reason = this.failed ? this.failed.error.message : 'the disk did not complete the write in time';
      const err = new Error(`not written before shutdown: ${reason}`);
      for (const w of left) w.reject(err);
    }
    // Closing the files (cutting what a failed write left) is tried even past the deadline, briefly.
    await this.within(
      this.o.target.finish().catch(() => undefined),
      Math.max(this.deadline, Date.now()) + FINISH_GRACE_MS,
    );
    return left.map((w) => w.item);
  }

  /** Waits for `promise`, but not past `deadline` (the close deadline by default). */
  private async within(promise: Promise<void>, deadline = this.deadline): Promise<void> {
    if (deadline === Infinity) return promise;
    const timer = pause(deadline - Date.now(), true);
    try {
      await Promise.race([promise, timer.done]);
    } finally {
      timer.cancel();
    }
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    this.idle = new Promise<void>((resolve) => {
      this.wakeIdle = resolve;
    });
    // Deferred so that every append made in the same tick joins the first batch.
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.abandoned && (this.queue.length > 0 || this.needsRepair)) {
      let batch: Waiter<T>[] = [];
      try {
        this.writingSince = Date.now();
        if (this.needsRepair) {
          await this.o.target.repair();
          this.needsRepair = false;
        }
        batch = this.queue;
        this.queue = [];
        this.inFlight = batch;
        if (batch.length > 0) await this.o.target.commit(batch.map((w) => w.item));
        this.inFlight = [];
        this.writingSince = undefined;
        // Given up at the close deadline meanwhile: those appends were rejected already.
        if (this.abandoned) break;
        for (const w of batch) {
          this.bytes -= w.bytes;
          w.resolve();
        }
        attempt = 0;
        if (this.failed) {
          const failedForMs = Date.now() - this.failed.since;
          this.failed = undefined;
          this.o.onRecovered?.(failedForMs);
        }
      } catch (err) {
        this.inFlight = [];
        this.writingSince = undefined;
        if (this.abandoned) break;
        // Order is kept: the failed batch goes back in front of whatever arrived meanwhile.
        this.queue = batch.concat(this.queue);
        this.needsRepair = true;
        attempt++;
        const error = err instanceof Error ? err : new Error(String(err));
        this.failed = { since: this.failed?.since ?? Date.now(), error, attempts: attempt };
        this.o.onError(error, attempt);
        if (this.closing && (Date.now() >= this.deadline || (this.deadline === Infinity && attempt >= ATTEMPTS_WHEN_CLOSING))) break;
        const delay = backoffDelay(
          attempt,
          this.o.retryBaseMs ?? DEFAULT_RETRY_BASE_MS,
          this.o.retryMaxMs ?? DEFAULT_RETRY_MAX_MS,
          undefined,
        );
        const wait = pause(Math.min(delay, this.deadline - Date.now()), this.closing);
        this.backoff = wait;
        await wait.done;
        this.backoff = undefined;
      }
    }
    this.running = false;
    this.wakeIdle();
  }

  /** A target that finds its files unusable while idle (a removed file) fails as a write would, and is repaired. */
  private async probe(): Promise<void> {
    if (this.probing || this.running || this.closing || !this.o.target.probe) return;
    this.probing = true;
    try {
      await this.o.target.probe();
    } catch (err) {
      if (this.closing) return;
      const error = err instanceof Error ? err : new Error(String(err));
      this.failed = { since: this.failed?.since ?? Date.now(), error, attempts: 0 };
      this.o.onError(error, 0);
      this.needsRepair = true;
      this.kick();
    } finally {
      this.probing = false;
    }
  }
}
