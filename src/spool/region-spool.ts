import { access, mkdir, unlink } from 'node:fs/promises';
import type { AppendFailure } from '../storage/durable-appender';
import { comparePositions, ConsumerCursors } from './consumer-cursors';
import { assertConsumerName } from './cursor-store';
import { isSeverity, MAX_PAYLOAD_BYTES, payloadBytes } from './record-codec';
import { recoverSegments } from './recovery';
import { SegmentCatalog } from './segment-catalog';
import { isNotFound, segmentPath } from './segment-files';
import { planRead, readSpans } from './segment-reader';
import { SegmentWriter } from './segment-writer';
import { TailCache } from './tail-cache';
import type { RegionSpoolOptions, SpoolEntry, SpoolPosition, SpoolRecord, SpoolRecoveryReport } from './types';

/** A read planned against a segment that was deleted meanwhile is planned again, this many times at most. */
const READ_REPLANS = 3;
/**
 * Recent records kept in memory for readers that keep up. A worker that keeps up reads events at most a batch wait
 * (BATCH_MAX_WAIT_MS) plus a round trip old: at 3,000 events/s of 1.1 KB that is under 1 MB. 2 MiB covers it with room;
 * more only raised the heap V8 keeps (8 MiB: peak RSS 175 vs 152 MB at 64 connections, same throughput).
 */
const TAIL_CACHE_BYTES = 2 * 1024 * 1024;

function entryProblem(entry: SpoolEntry): string | undefined {
  if (typeof entry.timestampMs !== 'number') return 'timestampMs is not a number';
  if (!isSeverity(entry.severity)) return `unknown severity ${JSON.stringify(entry.severity)}`;
  if (typeof entry.json !== 'string') return 'json is not a string';
  return undefined;
}

/**
 * A region's durable spool: a write-ahead log of audit events in numbered segment files, read by several consumers (sinks)
 * that each keep a persisted cursor. Appends are group-committed; a segment is deleted once every consumer has passed it.
 * The format is described in record-codec.ts.
 */
export class RegionSpool {
  private closed = false;
  private readonly listeners = new Set<() => void>();
  private readonly writer: SegmentWriter;
  /** Recently committed records, for readers that keep up (see TailCache). */
  private readonly tail = new TailCache(TAIL_CACHE_BYTES);
  /** Set by open() right after construction, once the cursors are loaded. */
  private cursors!: ConsumerCursors;
  private committed = 0;

  private constructor(
    private readonly options: RegionSpoolOptions,
    private readonly catalog: SegmentCatalog,
    firstWriteSeq: number,
    /** What open() found on disk and repaired. */
    readonly recoveredFrom: SpoolRecoveryReport,
  ) {
    this.writer = new SegmentWriter(
      {
        dir: options.dir,
        fsync: options.fsync,
        segmentBytes: options.segmentBytes,
        onSegmentCreated: (seq) => catalog.add(seq),
        onCommitted: (sizes, seq, start, entries) => {
          catalog.commit(sizes);
          this.committed += sizes.length;
          this.tail.add(seq, start, entries, sizes);
          this.notifyDurable();
        },
        onError: (err, attempt) => this.reportError(err, attempt),
        onRecovered: (failedForMs) => options.onRecovered?.(failedForMs),
        onRestored: (seq) => void this.onSegmentRestored(seq),
      },
      firstWriteSeq,
    );
  }

  static async open(options: RegionSpoolOptions): Promise<RegionSpool> {
    if (!(options.segmentBytes > 0)) throw new Error(`segmentBytes must be positive, got ${options.segmentBytes}`);
    for (const consumer of options.consumers) assertConsumerName(consumer);
    if (new Set(options.consumers).size !== options.consumers.length) throw new Error('spool consumer names must be unique');
    await mkdir(options.dir, { recursive: true, mode: 0o750 });

    const report = (err: Error): void => {
      try {
        options.onError?.(err, 0);
      } catch {
        // A failing error handler must not fail recovery.
      }
    };
    const recovery = await recoverSegments(options.dir, options.fsync, report);
    const catalog = new SegmentCatalog();
    for (const seg of recovery.segments) catalog.add(seg.seq, seg.bytes, seg.offsets);
    const lastSeq = recovery.segments[recovery.segments.length - 1]?.seq ?? 0;

    const spool = new RegionSpool(options, catalog, lastSeq + 1, recovery.report);
    // Never append to a recovered segment: its tail was just repaired, and a fresh file keeps old and new writes apart.
    await spool.writer.start();
    // Clamped to a real record boundary (or the end): a stored cursor may point into a segment deleted since, or past a
    // truncated tail. A missing one starts at the oldest record.
    const clamp = (stored: SpoolPosition | undefined): SpoolPosition =>
      catalog.position(catalog.resolve(stored ?? { segment: catalog.oldest.seq, offset: 0 }));
    spool.cursors = await ConsumerCursors.load(options.dir, options.consumers, clamp, (err) => spool.reportError(err, 0));
    // A crash between a cursor save and the deletion it allowed leaves passed segments behind. With beforeDelete, the
    // owner reads them first (the audit chain resumes from them) and calls collect().
    if (!options.beforeDelete) await spool.collectGarbage();
    return spool;
  }

  /** Set while writes fail: since when, the last error. */
  get writeFailure(): AppendFailure | undefined {
    return this.writer.failure;
  }

  /** Events appended and not yet durable (waiting, or in the write in progress), and their JSON bytes. */
  get pendingEvents(): number {
    return this.writer.pendingEvents;
  }

  get pendingBytes(): number {
    return this.writer.pendingBytes;
  }

  /** How long the write in progress has been running (0 when none is): a disk that hangs shows here. */
  writingForMs(now?: number): number {
    return this.writer.writingForMs(now);
  }

  /** Events appended and not yet durable, oldest first. */
  unwritten(): SpoolEntry[] {
    return this.writer.unwritten();
  }

  /** Resolves once the entry is durable; waits through disk errors (they are retried), rejects only once closed. */
  append(entry: SpoolEntry): Promise<void> {
    if (this.closed) return Promise.reject(new Error('spool is closed'));
    // Checked here, not left to the encoder: an entry that cannot be encoded would fail its whole batch on every retry.
    const problem = entryProblem(entry);
    if (problem) return Promise.reject(new Error(`spool entry rejected: ${problem}`));
    const jsonBytes = Buffer.byteLength(entry.json, 'utf8');
    if (jsonBytes > MAX_PAYLOAD_BYTES) {
      return Promise.reject(new Error(`event of ${jsonBytes} bytes exceeds the spool's limit of ${MAX_PAYLOAD_BYTES}`));
    }
    return this.writer.append({ timestampMs: entry.timestampMs, severity: entry.severity, json: entry.json, jsonBytes });
  }

  /**
   * Durable records from `from` on. A `from` between two records starts at the next one; one in a deleted segment starts at
   * the oldest record still there. Returns at least one record when any is available, even if it alone exceeds maxBytes.
   */
  async read(from: SpoolPosition, maxEvents: number, maxBytes: number): Promise<SpoolRecord[]> {
    this.assertOpen();
    const cached = this.tail.read(from, maxEvents, maxBytes, (r) => payloadBytes(r.size));
    if (cached) return cached;
    for (let replan = 0; ; replan++) {
      const spans = planRead(this.catalog, from, maxEvents, maxBytes);
      try {
        return await readSpans(this.options.dir, spans, (err) => this.reportError(err, 0));
      } catch (err) {
        // The segment was deleted (all consumers passed it, or it was dropped) between planning and opening it; or
        // removed from under the spool, which is then forgotten.
        if (!isNotFound(err) || (replan >= READ_REPLANS && (await this.forgetRemovedSegments()) === 0)) throw err;
        from = this.catalog.position(this.catalog.resolve(from));
      }
    }
  }

  cursor(consumer: string): SpoolPosition {
    return this.cursors.get(consumer);
  }

  /**
   * Moves the consumer's cursor forward to `next` (a backward move is ignored), persists it, then deletes the segments
   * every consumer has passed. A failed cursor write is reported and otherwise ignored: it only means re-delivery.
   */
  async acknowledge(consumer: string, next: SpoolPosition): Promise<void> {
    this.assertOpen();
    const current = this.cursor(consumer);
    const target = this.catalog.position(this.catalog.resolve(next));
    if (comparePositions(target, this.catalog.position(this.catalog.resolve(current))) <= 0) return;
    this.cursors.set(consumer, target);
    await this.cursors.persist(consumer);
    await this.collectGarbage();
  }

  /** Records made durable since this spool was opened. */
  get committedRecords(): number {
    return this.committed;
  }

  /** Position after the last durable record. */
  get endPosition(): SpoolPosition {
    return this.catalog.position(this.catalog.endLocation());
  }

  /** Durable bytes the slowest consumer has not acknowledged (all of them when there are no consumers). */
  get bytes(): number {
    let most = this.options.consumers.length === 0 ? this.catalog.totalBytes : 0;
    for (const [, pos] of this.cursors.entries()) most = Math.max(most, this.catalog.bytesFrom(this.catalog.resolve(pos)));
    return most;
  }

  /** Durable bytes of all segments on disk. */
  get totalBytes(): number {
    return this.catalog.totalBytes;
  }

  /** Durable records after the consumer's cursor: index lookups, no I/O. */
  pending(consumer: string): number {
    return this.catalog.recordsFrom(this.catalog.resolve(this.cursor(consumer)));
  }

  /**
   * Deletes the oldest segment (after rolling, if it is the one being written) for the drop-oldest spool-full policy.
   * Consumers positioned in it move to the start of the next one. Returns how many of its records at least one consumer had
   * not acknowledged yet: the events lost.
   */
  async dropOldestSegment(): Promise<number> {
    this.assertOpen();
    while (this.catalog.oldest.seq === this.writer.segment) await this.writer.roll();
    if (!(await this.mayDelete())) return 0;
    return this.removeOldestSegment();
  }

  /** Forgets the oldest segment (deleting its file), moving the consumers in it to the next; returns the records lost. */
  private async removeOldestSegment(): Promise<number> {
    const oldest = this.catalog.oldest;
    let lost = 0;
    for (const [, pos] of this.cursors.entries()) {
      const loc = this.catalog.resolve(pos);
      if (loc.index === 0) lost = Math.max(lost, oldest.offsets.length - loc.record);
    }
    this.catalog.removeOldest();
    const moved: string[] = [];
    for (const [consumer, pos] of this.cursors.entries()) {
      if (pos.segment <= oldest.seq) {
        this.cursors.set(consumer, this.catalog.position(this.catalog.resolve({ segment: oldest.seq + 1, offset: 0 })));
        moved.push(consumer);
      }
    }
    await this.deleteSegmentFile(oldest.seq);
    await Promise.all(moved.map((consumer) => this.cursors.persist(consumer)));
    // The moved cursors may now be past more segments (empty ones left by restarts): they go too, losing nothing.
    await this.collectGarbage();
    return lost;
  }

  /** Called after each successful group commit; returns the unsubscribe function. A listener that throws is ignored. */
  onDurable(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Finishes the pending group commits (appends after this reject), waits for cursor writes, closes files. With a deadline,
   * never waits past it (the disk may hang); returns the entries that could not be written.
   */
  async close(deadline?: number): Promise<SpoolEntry[]> {
    if (this.closed) return [];
    this.closed = true;
    const unwritten = await this.writer.close(deadline);
    const settled = this.cursors.settle();
    if (deadline === undefined) await settled;
    else await Promise.race([settled, new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref())]);
    this.listeners.clear();
    return unwritten;
  }

  /**
   * The segment being written was removed while open (its directory deleted) and has been written back: older segments
   * went with it. They are forgotten; what they held that some sink had not acknowledged is lost, and reported.
   */
  private async onSegmentRestored(seq: number): Promise<void> {
    this.reportError(new Error(`spool segment ${segmentPath(this.options.dir, seq)} was removed while in use; written back whole`), 0);
    await this.forgetRemovedSegments();
    for (const [consumer] of this.cursors.entries()) void this.cursors.persist(consumer, true);
  }

  /** Forgets the oldest segments whose files are gone; returns the events lost with them (also reported). */
  private async forgetRemovedSegments(): Promise<number> {
    let lost = 0;
    let forgotten = 0;
    while (!this.closed && this.catalog.oldest.seq !== this.writer.segment) {
      const seq = this.catalog.oldest.seq;
      try {
        await access(segmentPath(this.options.dir, seq));
        break;
      } catch (err) {
        if (!isNotFound(err)) break;
      }
      // Checked again after the await: a concurrent drop or collection may have removed it already.
      if (this.catalog.oldest.seq !== seq) continue;
      lost += await this.removeOldestSegment();
      forgotten++;
    }
    if (forgotten > 0) {
      this.options.onLost?.(lost);
      this.reportError(
        new Error(
          `${forgotten} spool segment file(s) of ${this.options.dir} were removed from under the gateway: ${lost} undelivered events lost`,
        ),
        0,
      );
    }
    return forgotten;
  }

  /** Deletes the segments every consumer has passed (what open() leaves behind when beforeDelete is set). */
  async collect(): Promise<void> {
    this.assertOpen();
    await this.collectGarbage();
  }

  /** Deletes every finished segment that all consumers have passed. Kept when there are no consumers: nobody read it. */
  private async collectGarbage(): Promise<void> {
    if (this.cursors.size === 0 || this.slowestSegmentIndex() === 0) return;
    if (!(await this.mayDelete())) return;
    const slowest = this.slowestSegmentIndex();
    // Segments before the slowest cursor's segment; the newest is never among them since a cursor cannot pass it. All are
    // taken out of the catalog before the first await: a concurrent collection must not count them again.
    const doomed: number[] = [];
    for (let i = 0; i < slowest; i++) doomed.push(this.catalog.removeOldest().seq);
    for (const seq of doomed) await this.deleteSegmentFile(seq);
  }

  private slowestSegmentIndex(): number {
    let slowest = Infinity;
    for (const [, pos] of this.cursors.entries()) slowest = Math.min(slowest, this.catalog.resolve(pos).index);
    return slowest;
  }

  /** Runs beforeDelete; false (reported) when it failed, so nothing is deleted this time. */
  private async mayDelete(): Promise<boolean> {
    if (!this.options.beforeDelete) return true;
    try {
      await this.options.beforeDelete();
      return true;
    } catch (err) {
      this.reportError(err as Error, 0);
      return false;
    }
  }

  private async deleteSegmentFile(seq: number): Promise<void> {
    this.tail.forgetUpTo(seq);
    try {
      await unlink(segmentPath(this.options.dir, seq));
    } catch (err) {
      if (!isNotFound(err)) this.reportError(err as Error, 0);
    }
  }

  private notifyDurable(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch {
        // One faulty listener must not stall the commit loop or starve the others.
      }
    }
  }

  private reportError(err: Error, attempt: number): void {
    try {
      this.options.onError?.(err, attempt);
    } catch {
      // The handler is for observing; its failure must not break the retry loop.
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('spool is closed');
  }
}
