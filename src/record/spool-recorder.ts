import path from 'node:path';
import type { Logger } from 'pino';
import type { SinkName, SpoolFullPolicy } from '../config';
import { GatewayError } from '../errors';
import { CHAIN_FIELD } from '../integrity/chain-block';
import { RegionLog, type IntegrityOptions } from '../integrity/region-log';
import { unchainedEvent } from '../integrity/unchained-event';
import type { Metrics } from '../metrics';
import { RegionSpool } from '../spool/region-spool';
import type { SpoolEntry } from '../spool/types';
import { describeStorageProblem, storageUnusable } from '../storage/storage-problem';
import { isReadMethod, type RecordedEvent, type Region } from '../types';
import type { EventRecorder, RecordOptions, UnwrittenReport } from './recorder';

export interface SpoolRecorderOptions {
  dir: string;
  regions: readonly Region[];
  consumers: readonly SinkName[];
  fsync: boolean;
  segmentBytes: number;
  maxBytes: number;
  fullPolicy: SpoolFullPolicy;
  logger: Logger;
  metrics: Metrics;
  /** SPOOL_HOLD_MS: the longest a forwarded call's answer waits for its event to be durable. */
  holdMs?: number;
  /**
   * The audit chain and its checkpoints (src/integrity), on unless `false` (benchmarks only, to measure their cost).
   * Default: unsigned checkpoints every 60 s.
   */
  integrity?: IntegrityOptions | false;
}

const DEFAULT_INTEGRITY: IntegrityOptions = { checkpointIntervalMs: 60_000, signingKey: undefined, accountId: undefined };

/** SPOOL_HOLD_MS's default. */
export const DEFAULT_HOLD_MS = 3000;
/**
 * Events of one region waiting for the disk, in bytes, beyond which new calls are refused (a disk too slow for the calls)
 * and the events of refused calls are kept in the log only. At most MAX_CONNECTIONS forwarded calls can be waiting.
 */
export const MEMORY_MAX_BYTES = 16 * 1024 * 1024;

/** Reads may go this far over SPOOL_MAX_BYTES under reject-writes; beyond it every call is refused. */
const READ_HEADROOM = 1.25;
const WARN_EVERY_MS = 10_000;
/** Failed attempts logged one by one; after them every LOG_EVERY_ATTEMPTS-th (about every 10 s at the 500 ms backoff cap). */
const LOGGED_ATTEMPTS = 3;
const LOG_EVERY_ATTEMPTS = 20;
const PROBLEM_QUIET_MS = 10_000;

const UNWRITABLE_MESSAGE =
  "Audit events cannot be written to disk right now (the gateway's spool is failing), so this call was refused rather than left unaudited. Retry later.";

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * The recorder of the gateway: every event is appended to its region's write-ahead spool (durable when record()
 * resolves), and the spool decides whether new calls are admitted: its capacity (SPOOL_FULL_POLICY) and its disk.
 *
 * While a spool cannot be written (writes fail, a write has hung for longer than SPOOL_HOLD_MS, or more than
 * MEMORY_MAX_BYTES of events wait for a slow disk), new calls are refused (503 audit_spool_unwritable) before they reach
 * Code Engine, and readiness fails with the reason. A call that was already forwarded waits for its event at most
 * SPOOL_HOLD_MS, then gets Code Engine's real answer while its event waits in memory, is written first once the disk
 * recovers, and is copied meanwhile (redacted, as every event) into the process log: a crash before the disk recovers
 * leaves it there. The event of a refused call is kept the same way (in memory while there is room) and never waited for.
 */
export class SpoolRecorder implements EventRecorder {
  private readonly dropListeners = new Set<(region: Region) => void>();
  private lastWarned = 0;
  private lastProblem: { message: string; at: number; repeated: number } | undefined;
  private relieving = false;
  private readonly holdMs: number;

  private constructor(
    private readonly o: SpoolRecorderOptions,
    private readonly spools: ReadonlyMap<Region, RegionSpool>,
    /** Each region's audit chain; empty with integrity off. */
    private readonly logs: ReadonlyMap<Region, RegionLog>,
  ) {
    this.holdMs = o.holdMs ?? DEFAULT_HOLD_MS;
  }

  static async open(o: SpoolRecorderOptions): Promise<SpoolRecorder> {
    const spools = new Map<Region, RegionSpool>();
    const logs = new Map<Region, RegionLog>();
    const integrity = o.integrity === false ? undefined : (o.integrity ?? DEFAULT_INTEGRITY);
    let recorder: SpoolRecorder | undefined;
    const closeAll = async (): Promise<void> => {
      await Promise.allSettled([...logs.values()].map((l) => l.close()));
      await Promise.allSettled([...spools.values()].map((s) => s.close()));
    };
    for (const region of o.regions) {
      const dir = path.join(o.dir, region);
      let spool: RegionSpool;
      try {
        spool = await RegionSpool.open({
          dir,
          fsync: o.fsync,
          segmentBytes: o.segmentBytes,
          consumers: o.consumers,
          onError: (err, attempt) => recorder?.onWriteError(region, err, attempt),
          onRecovered: (failedForMs) => recorder?.onWriteRecovered(region, failedForMs),
          onLost: (events) => o.metrics.eventsNotSpooled.inc({ region, reason: 'segment_removed' }, events),
          // The chain's state is saved before the spool deletes the records it was derived from.
          beforeDelete: integrity
            ? () => logs.get(region)?.save() ?? Promise.reject(new Error('the audit chain is not open yet'))
            : undefined,
        });
      } catch (err) {
        await closeAll();
        throw storageUnusable(err, 'SPOOL_DIR', dir);
      }
      spools.set(region, spool);
      const r = spool.recoveredFrom;
      if (r.truncatedBytes > 0) o.logger.warn({ region, ...r }, 'spool recovered from a torn or corrupt tail');
      if (integrity) {
        try {
          logs.set(region, await RegionLog.open({ ...integrity, region, spool, dir, fsync: o.fsync, logger: o.logger }));
          await spool.collect();
        } catch (err) {
          await closeAll();
          throw err;
        }
      }
    }
    if (integrity && !integrity.signingKey) {
      o.logger.warn(
        'AUDIT_SIGNING_KEY_FILE is not set: audit checkpoints are written and chained but not signed, so they prove no author (ce-audit keygen makes a key)',
      );
    }
    recorder = new SpoolRecorder(o, spools, logs);
    o.metrics.spoolStateOf = () =>
      [...spools].map(([region, spool]) => {
        const failure = spool.writeFailure;
        return [region, spool.pendingEvents, failure ? (Date.now() - failure.since) / 1000 : 0];
      });
    return recorder;
  }

  spoolFor(region: Region): RegionSpool {
    const spool = this.spools.get(region);
    if (!spool) throw new Error(`no spool for region ${region}`);
    return spool;
  }

  get regions(): IterableIterator<[Region, RegionSpool]> {
    return this.spools.entries();
  }

  /** The consumers (sinks) whose cursors the spools keep. */
  get consumers(): readonly string[] {
    return this.o.consumers;
  }

  /** Called after events were dropped (drop-oldest): cursors of that region moved. */
  onDropped(listener: (region: Region) => void): () => void {
    this.dropListeners.add(listener);
    return () => this.dropListeners.delete(listener);
  }

  async record(event: RecordedEvent, options: RecordOptions = {}): Promise<void> {
    const spool = this.spoolFor(event.region);
    if (!options.forwarded && this.problemOf(event.region, spool) !== undefined) {
      this.keepRefused(spool, event);
      return;
    }
    const durable = this.append(event);
    if (await this.heldBack(durable)) {
      this.answeredBeforeDurable(event, durable);
      return;
    }
    this.o.metrics.recordedIn(event.region).inc();
    if (this.o.fullPolicy === 'drop-oldest' && this.undeliveredBytes() > this.o.maxBytes) void this.relievePressure();
  }

  /** True when SPOOL_HOLD_MS passed before the event was durable; rejects when the spool refused it. */
  private heldBack(durable: Promise<void>): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => resolve(true), this.holdMs);
      timer.unref();
      durable.then(
        () => {
          clearTimeout(timer);
          resolve(false);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err as Error);
        },
      );
    });
  }

  /** A forwarded call is answered while its event still waits for the disk: counted, and copied into the process log. */
  private answeredBeforeDurable(event: RecordedEvent, durable: Promise<void>): void {
    this.o.metrics.answeredBeforeDurable.inc({ region: event.region });
    this.logEvent(
      event,
      `audit event not durable after SPOOL_HOLD_MS (${this.holdMs} ms): the call is answered, the event waits in memory and is written first once the spool can be (this line is its copy)`,
    );
    durable.then(
      () => this.o.metrics.recordedIn(event.region).inc(),
      // Not written before shutdown: reported then (see close).
      () => undefined,
    );
  }

  /** The event of a call refused while the spool cannot be written: in memory while there is room, always in the log. */
  private keepRefused(spool: RegionSpool, event: RecordedEvent): void {
    const room = spool.pendingBytes + Buffer.byteLength(event.json) <= MEMORY_MAX_BYTES;
    if (room) {
      this.append(event).then(
        () => this.o.metrics.recordedIn(event.region).inc(),
        () => undefined,
      );
    } else {
      this.o.metrics.eventsNotSpooled.inc({ region: event.region, reason: 'memory_full' });
    }
    this.o.metrics.answeredBeforeDurable.inc({ region: event.region });
    this.logEvent(
      event,
      room
        ? 'audit event of a call refused while the spool cannot be written: kept in memory until it can be (this line is its copy)'
        : 'audit event of a call refused while the spool cannot be written: memory for waiting events is full, this line is its only copy',
    );
  }

  /** Chains the event (with integrity on) and hands it to its region's spool; resolves once it is durable. */
  private append(event: RecordedEvent): Promise<void> {
    const log = this.logs.get(event.region);
    if (log) {
      let unchained: ReturnType<typeof unchainedEvent>;
      try {
        unchained = unchainedEvent(event);
      } catch (err) {
        return Promise.reject(err as Error);
      }
      return log.append(unchained);
    }
    return this.spoolFor(event.region).append({ timestampMs: event.timestampMs, severity: event.severity, json: event.json });
  }

  /**
   * Copies an event into the process log, under `auditEvent`. The copy never carries the audit chain's block: a copy
   * is not part of the chain (once the disk recovers, the chained event is in the trail with the same id; after a crash
   * before that, the chain continues from what the spool holds and the copy stays outside it, which ce-audit verify
   * reports as unchained rather than as a fork).
   */
  private logEvent(event: RecordedEvent, msg: string, level: 'warn' | 'error' = 'warn'): void {
    let auditEvent: unknown;
    try {
      auditEvent = JSON.parse(event.json) as unknown;
      if (auditEvent !== null && typeof auditEvent === 'object') delete (auditEvent as Record<string, unknown>)[CHAIN_FIELD];
    } catch {
      auditEvent = event.json;
    }
    this.o.logger[level]({ region: event.region, eventId: event.id, auditEvent }, msg);
  }

  /** Why the region's spool cannot take events now, for logs and readiness; undefined when it can. */
  private problemOf(region: Region, spool: RegionSpool, now = Date.now()): string | undefined {
    // Asked for every call: the healthy path reads three numbers and builds nothing.
    const failure = spool.writeFailure;
    const writing = spool.writingForMs(now);
    if (failure === undefined && writing <= this.holdMs && spool.pendingBytes <= MEMORY_MAX_BYTES) return undefined;
    const dir = path.join(this.o.dir, region);
    if (failure) {
      return `${describeStorageProblem(failure.error, 'SPOOL_DIR', dir)} Writes have failed for ${seconds(now - failure.since)} (${failure.error.message}).`;
    }
    if (writing > this.holdMs)
      return `SPOOL_DIR ${JSON.stringify(dir)}: a write has not completed for ${seconds(writing)} (the disk is stalled).`;
    return `SPOOL_DIR ${JSON.stringify(dir)}: ${spool.pendingEvents} events (${spool.pendingBytes} bytes) wait to be written (the disk is too slow).`;
  }

  /** Why events cannot be written now, one line per region that cannot take them (readiness). */
  writeProblems(): string[] {
    const now = Date.now();
    const problems: string[] = [];
    for (const [region, spool] of this.spools) {
      const problem = this.problemOf(region, spool, now);
      if (problem) problems.push(`audit events cannot be written to the spool of ${region}: ${problem}`);
    }
    return problems;
  }

  isHealthy(): boolean {
    const now = Date.now();
    for (const [region, spool] of this.spools) if (this.problemOf(region, spool, now) !== undefined) return false;
    return true;
  }

  /** Bytes of undelivered events on disk, all regions. */
  undeliveredBytes(): number {
    let total = 0;
    for (const spool of this.spools.values()) total += spool.bytes;
    return total;
  }

  isFull(): boolean {
    return this.undeliveredBytes() >= this.o.maxBytes;
  }

  /**
   * Whether a new call (to `region`, or any) may proceed. A spool that cannot be written refuses every call: each needs an
   * event. Under reject-writes a full spool refuses calls that change something, so no action happens unaudited; reads pass
   * (their events recorded over the limit, with a warning) up to a hard ceiling. reject-all refuses every call;
   * drop-oldest admits every call and drops old events instead.
   */
  admit(method: string, region?: Region): GatewayError | undefined {
    if (region !== undefined) {
      if (this.problemOf(region, this.spoolFor(region)) !== undefined) return new GatewayError('ERR_SPOOL_UNWRITABLE', UNWRITABLE_MESSAGE);
    } else if (!this.isHealthy()) {
      return new GatewayError('ERR_SPOOL_UNWRITABLE', UNWRITABLE_MESSAGE);
    }
    if (this.o.fullPolicy === 'drop-oldest') return undefined;
    const bytes = this.undeliveredBytes();
    if (bytes < this.o.maxBytes) return undefined;
    const read = isReadMethod(method);
    if (this.o.fullPolicy === 'reject-writes' && read && bytes < this.o.maxBytes * READ_HEADROOM) {
      if (Date.now() - this.lastWarned > WARN_EVERY_MS) {
        this.lastWarned = Date.now();
        this.o.logger.warn(
          { spoolBytes: bytes, maxBytes: this.o.maxBytes },
          'spool full: reads still pass and are recorded over the limit; mutating calls are refused',
        );
      }
      return undefined;
    }
    const mib = (bytes / 2 ** 20).toFixed(1);
    return new GatewayError(
      'ERR_SPOOL_FULL',
      `The audit spool is full (${mib} MiB of events not yet delivered to Activity Tracker), so this call was refused rather than left unaudited. Retry once delivery has caught up.`,
    );
  }

  /** drop-oldest: delete the oldest segments of the largest spools until under the limit. */
  private async relievePressure(): Promise<void> {
    if (this.relieving) return;
    this.relieving = true;
    try {
      while (this.undeliveredBytes() > this.o.maxBytes) {
        const [region, spool] = [...this.spools].sort((a, b) => b[1].bytes - a[1].bytes)[0] as [Region, RegionSpool];
        const before = spool.bytes;
        const dropped = await spool.dropOldestSegment();
        if (dropped > 0) this.o.metrics.eventsDropped.inc({ region }, dropped);
        for (const l of this.dropListeners) l(region);
        this.o.logger.warn(
          { region, dropped, spoolBytes: spool.bytes },
          'spool full: oldest undelivered events dropped (SPOOL_FULL_POLICY=drop-oldest)',
        );
        // Stop only when a drop made no progress at all (nothing droppable is left); bytes alone can stay level
        // while appends continue beside the drop.
        if (dropped === 0 && spool.bytes >= before) break;
      }
    } finally {
      this.relieving = false;
    }
  }

  private onWriteError(region: Region, err: Error, attempt: number): void {
    const e = { message: err.message, code: (err as NodeJS.ErrnoException).code };
    // Attempt 0: found outside a write (recovery at open, a removed file, a cursor not saved). The same problem again
    // within PROBLEM_QUIET_MS is counted, not logged (a cursor save fails with every delivered batch on a full disk).
    if (attempt === 0) {
      const now = Date.now();
      const last = this.lastProblem;
      if (last && last.message === err.message && now - last.at < PROBLEM_QUIET_MS) {
        last.repeated++;
        return;
      }
      this.o.logger.error({ region, err: e, ...(last?.repeated ? { repeatedBefore: last.repeated } : {}) }, 'spool problem');
      this.lastProblem = { message: err.message, at: now, repeated: 0 };
      return;
    }
    if (attempt > LOGGED_ATTEMPTS && attempt % LOG_EVERY_ATTEMPTS !== 0) return;
    this.o.logger.error(
      { region, attempt, err: e, problem: describeStorageProblem(err, 'SPOOL_DIR', path.join(this.o.dir, region)) },
      'spool write failed; new calls are refused until a retry succeeds',
    );
  }

  private onWriteRecovered(region: Region, failedForMs: number): void {
    this.o.logger.warn(
      { region, failedForMs, stillWaiting: this.spoolFor(region).pendingEvents },
      'spool writes recovered: events kept in memory were written first; new calls are admitted again',
    );
  }

  /** Events not yet durable, every region (what a shutdown now would leave unwritten). */
  unwritten(): Array<[Region, SpoolEntry[]]> {
    return [...this.spools].map(([region, spool]) => [region, spool.unwritten()]);
  }

  /**
   * Writes each event in `left` into the process log (its only copy then) and ends with one line giving their count and
   * ids: nothing is dropped silently.
   */
  reportUnwritten(left: ReadonlyArray<[Region, readonly SpoolEntry[]]>): UnwrittenReport {
    const ids: string[] = [];
    for (const [region, entries] of left) {
      for (const entry of entries) {
        let id = '';
        try {
          id = String((JSON.parse(entry.json) as { id?: unknown }).id ?? '');
        } catch {
          // Logged as the text it is.
        }
        ids.push(id);
        this.o.metrics.eventsNotSpooled.inc({ region, reason: 'unwritten_at_shutdown' });
        this.logEvent(
          { id, region, eventTime: '', timestampMs: entry.timestampMs, severity: entry.severity, json: entry.json },
          'audit event could not be written to the spool before the gateway stopped: this line is its only copy',
          'error',
        );
      }
    }
    if (ids.length > 0) {
      this.o.logger.error(
        { count: ids.length, ids },
        `shutdown: ${ids.length} audit events could not be written to the spool; each is in a log line above (auditEvent)`,
      );
    }
    return { count: ids.length, ids };
  }

  /** Writes what is pending until `deadline` (if given), closes the spools, reports (and logs) what could not be written. */
  /**
   * Appends each region's shutdown checkpoint, covering every event recorded so far, so that delivery can send it
   * before the gateway stops. close() writes another only for events recorded after this.
   */
  async seal(): Promise<void> {
    await Promise.all([...this.logs.values()].map((l) => l.seal()));
  }

  /** The audit chain of a region (undefined with integrity off). */
  logFor(region: Region): RegionLog | undefined {
    return this.logs.get(region);
  }

  /**
   * Writes what is pending until `deadline` (if given), closes the spools, reports (and logs) what could not be written.
   * Each log's shutdown checkpoint is queued first; the spools' close() then writes it (or gives it up with any other
   * pending event when the disk keeps failing) before the logs save where they stand, also no later than `deadline`.
   */
  async close(deadline?: number): Promise<UnwrittenReport> {
    for (const l of this.logs.values()) l.finish().catch(() => undefined);
    const left = await Promise.all(
      [...this.spools].map(async ([region, spool]): Promise<[Region, SpoolEntry[]]> => [region, await spool.close(deadline)]),
    );
    const saved = Promise.all([...this.logs.values()].map((l) => l.close()));
    if (deadline === undefined) await saved;
    else await Promise.race([saved, new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref())]);
    return this.reportUnwritten(left);
  }
}
