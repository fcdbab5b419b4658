import path from 'node:path';
import type { Logger } from 'pino';
import type { SinkName, SpoolFullPolicy } from '../config';
import { GatewayError } from '../errors';
import type { Metrics } from '../metrics';
import { RegionLog, type IntegrityOptions } from '../integrity/region-log';
import { unchainedEvent } from '../integrity/unchained-event';
import { RegionSpool } from '../spool/region-spool';
import { isReadMethod, type RecordedEvent, type Region } from '../types';
import type { EventRecorder } from './recorder';

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
  /**
   * The audit chain and its checkpoints (src/integrity), on unless `false` (benchmarks only, to measure their cost).
   * Default: unsigned checkpoints every 60 s.
   */
  integrity?: IntegrityOptions | false;
}

const DEFAULT_INTEGRITY: IntegrityOptions = { checkpointIntervalMs: 60_000, signingKey: undefined, accountId: undefined };

/** Reads may go this far over SPOOL_MAX_BYTES under reject-writes; beyond it every call is refused. */
const READ_HEADROOM = 1.25;
const WARN_EVERY_MS = 10_000;

/**
 * The recorder of the gateway: every event is appended to its region's write-ahead spool (durable when
 * record() resolves), and the spool's size decides whether new calls are admitted (SPOOL_FULL_POLICY).
 */
export class SpoolRecorder implements EventRecorder {
  private failingSince: number | undefined;
  private readonly dropListeners = new Set<(region: Region) => void>();
  private lastWarned = 0;
  private relieving = false;

  private constructor(
    private readonly o: SpoolRecorderOptions,
    private readonly spools: ReadonlyMap<Region, RegionSpool>,
    /** Each region's audit chain; empty with integrity off. */
    private readonly logs: ReadonlyMap<Region, RegionLog>,
  ) {}

  static async open(o: SpoolRecorderOptions): Promise<SpoolRecorder> {
    const spools = new Map<Region, RegionSpool>();
    const logs = new Map<Region, RegionLog>();
    const integrity = o.integrity === false ? undefined : (o.integrity ?? DEFAULT_INTEGRITY);
    let recorder: SpoolRecorder | undefined;
    try {
      for (const region of o.regions) {
        const dir = path.join(o.dir, region);
        const spool = await RegionSpool.open({
          dir,
          fsync: o.fsync,
          segmentBytes: o.segmentBytes,
          consumers: o.consumers,
          onError: (err, attempt) => recorder?.onWriteError(region, err, attempt),
          // The chain's state is saved before the spool deletes the records it was derived from.
          beforeDelete: integrity
            ? () => logs.get(region)?.save() ?? Promise.reject(new Error('the audit chain is not open yet'))
            : undefined,
        });
        spools.set(region, spool);
        const r = spool.recoveredFrom;
        if (r.truncatedBytes > 0) o.logger.warn({ region, ...r }, 'spool recovered from a torn or corrupt tail');
        if (integrity) {
          logs.set(region, await RegionLog.open({ ...integrity, region, spool, dir, fsync: o.fsync, logger: o.logger }));
          await spool.collect();
        }
      }
    } catch (err) {
      await Promise.allSettled([...logs.values()].map((l) => l.close()));
      await Promise.allSettled([...spools.values()].map((s) => s.close()));
      throw err;
    }
    if (integrity && !integrity.signingKey) {
      o.logger.warn(
        'AUDIT_SIGNING_KEY_FILE is not set: audit checkpoints are written and chained but not signed, so they prove no author (ce-audit keygen makes a key)',
      );
    }
    recorder = new SpoolRecorder(o, spools, logs);
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

  async record(event: RecordedEvent): Promise<void> {
    const log = this.logs.get(event.region);
    if (log) await log.append(unchainedEvent(event));
    else await this.spoolFor(event.region).append({ timestampMs: event.timestampMs, severity: event.severity, json: event.json });
    this.o.metrics.recordedIn(event.region).inc();
    if (this.failingSince !== undefined) {
      this.o.logger.warn({ failedForMs: Date.now() - this.failingSince }, 'spool writes recovered');
      this.failingSince = undefined;
    }
    if (this.o.fullPolicy === 'drop-oldest' && this.undeliveredBytes() > this.o.maxBytes) void this.relievePressure();
  }

  isHealthy(): boolean {
    return this.failingSince === undefined;
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
   * Whether a new call may proceed. Under reject-writes a full spool refuses calls that change something, so
   * no action happens unaudited; reads pass (their events recorded over the limit, with a warning) up to a
   * hard ceiling. reject-all refuses every call; drop-oldest admits every call and drops old events instead.
   */
  admit(method: string): GatewayError | undefined {
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
    this.failingSince ??= Date.now();
    this.o.logger.error(
      { region, attempt, err: { message: err.message, code: (err as NodeJS.ErrnoException).code } },
      'spool write failed; retrying',
    );
  }

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
   * Each log's shutdown checkpoint is queued first; the spools' close() then writes it (or gives it up when the disk
   * keeps failing, as it does any pending event) before the logs save where they stand.
   */
  async close(): Promise<void> {
    for (const l of this.logs.values()) l.finish().catch(() => undefined);
    await Promise.all([...this.spools.values()].map((s) => s.close()));
    await Promise.all([...this.logs.values()].map((l) => l.close()));
  }
}
