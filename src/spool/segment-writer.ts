import { constants, open, type FileHandle } from 'node:fs/promises';
import { encodeRecords, type EncodableEntry } from './record-codec';
import { segmentPath, syncDirectory } from './segment-files';

const RETRY_BASE_MS = 50;
const RETRY_MAX_MS = 5000;
/** Once closing, a batch that keeps failing is given up after this many attempts instead of holding close() forever. */
const ATTEMPTS_WHEN_CLOSING = 3;
/**
 * With fsync, a segment is filled with zeros this far ahead of its last record (at most to its size limit). A commit then
 * overwrites blocks the file already has: the file's size does not change, so the durable write needs no filesystem
 * journal commit (on ext4, a growing file's fdatasync waits for one, shared with every other metadata change on the disk).
 */
const PREALLOCATE_BYTES = 1024 * 1024;
let zeros: Buffer | undefined;
/** 0 where the platform has no O_DSYNC: each commit is then followed by an fdatasync. */
const DSYNC: number = constants.O_DSYNC ?? 0;

export interface SegmentWriterOptions {
  dir: string;
  fsync: boolean;
  segmentBytes: number;
  /** A new (empty) segment was started; it is the one written from now on. */
  onSegmentCreated: (seq: number) => void;
  /**
   * A batch is durable in segment `seq` from offset `start`: these entries, of these record sizes, in order.
   * Called before its appends resolve.
   */
  onCommitted: (sizes: readonly number[], seq: number, start: number, entries: readonly EncodableEntry[]) => void;
  onError: (err: Error, attempt: number) => void;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Queued extends Waiter {
  entry: EncodableEntry;
}

/**
 * Appends records to the newest segment with group commit: every entry that arrives while a write is in progress joins
 * the next batch, and each batch is one positional write(). With fsync the segment is opened O_DSYNC, so that write is
 * durable when it returns (one trip to the I/O thread pool instead of a write and an fdatasync), and it lands in space
 * zero-filled ahead of time (PREALLOCATE_BYTES). A failed batch is kept (in order, in front of later arrivals) and
 * retried with capped exponential backoff. Writes go to an explicit offset, so a retry overwrites whatever a failed
 * attempt left behind instead of appending after it. A finished segment is cut back to its last record.
 */
export class SegmentWriter {
  private queue: Queued[] = [];
  private rollWaiters: Waiter[] = [];
  private flushing = false;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private wakeIdle: (() => void) | undefined;
  private handle: FileHandle | undefined;
  private seq: number;
  /** Committed bytes of the current segment: where the next batch is written. */
  private size = 0;
  /**
   * Bytes the current segment's file may hold: its records, then zeros written ahead (fsync only) or whatever a failed
   * batch left. Everything past `size` is cut when the segment is finished.
   */
  private allocated = 0;

  constructor(
    private readonly options: SegmentWriterOptions,
    firstSeq: number,
  ) {
    this.seq = firstSeq - 1;
  }

  /** Sequence number of the segment being written. */
  get segment(): number {
    return this.seq;
  }

  /** Creates the first segment. Fails (rather than retrying) so that open() reports an unusable directory. */
  async start(): Promise<void> {
    await this.startNextSegment();
  }

  append(entry: EncodableEntry): Promise<void> {
    if (this.closed) return Promise.reject(new Error('spool is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ entry, resolve, reject });
      this.kick();
    });
  }

  /** Finishes the current segment and starts the next one, between two batches. */
  roll(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('spool is closed'));
    return new Promise<void>((resolve, reject) => {
      this.rollWaiters.push({ resolve, reject });
      this.kick();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.flushing) await this.idle;
    const handle = this.handle;
    this.handle = undefined;
    if (!handle) return;
    try {
      await this.cutToCommitted(handle);
    } catch {
      // Recovery at the next open() cuts whatever a failed batch left behind anyway.
    } finally {
      await handle.close();
    }
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = true;
    this.idle = new Promise<void>((resolve) => {
      this.wakeIdle = resolve;
    });
    // Deferred so that every append made in the same tick joins the first batch.
    setImmediate(() => void this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    let attempt = 0;
    while (this.queue.length > 0 || this.rollWaiters.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        // Checked before the batch, so a batch may overflow a segment a little but never waits on a roll it did not need.
        if (this.rollWaiters.length > 0 || (batch.length > 0 && this.size >= this.options.segmentBytes)) {
          await this.startNextSegment();
          const rolled = this.rollWaiters;
          this.rollWaiters = [];
          for (const w of rolled) w.resolve();
        }
        if (batch.length > 0) await this.writeBatch(batch);
        attempt = 0;
        for (const q of batch) q.resolve();
        // Appends that arrive meanwhile wait for it: once per PREALLOCATE_BYTES / 2 of records.
        await this.preallocate();
      } catch (err) {
        attempt++;
        // Order is kept: the failed batch goes back in front of whatever arrived meanwhile.
        this.queue = batch.concat(this.queue);
        await this.dropHandle();
        this.options.onError(err as Error, attempt);
        if (this.closed && attempt >= ATTEMPTS_WHEN_CLOSING) {
          for (const w of [...this.queue, ...this.rollWaiters]) w.reject(err as Error);
          this.queue = [];
          this.rollWaiters = [];
          break;
        }
        await new Promise((r) => setTimeout(r, Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempt - 1))));
      }
    }
    this.flushing = false;
    this.wakeIdle?.();
  }

  private async writeBatch(batch: readonly Queued[]): Promise<void> {
    const handle = await this.currentHandle();
    const { data, sizes } = encodeRecords(batch.map((q) => q.entry));
    // Should the write fail part-way, the file may hold these bytes: cut at the next roll unless a retry commits them.
    this.allocated = Math.max(this.allocated, this.size + data.length);
    let written = 0;
    // One write(); the loop only continues after a short write.
    while (written < data.length) {
      const { bytesWritten } = await handle.write(data, written, data.length - written, this.size + written);
      written += bytesWritten;
    }
    if (this.options.fsync && DSYNC === 0) await handle.datasync();
    const start = this.size;
    this.size += data.length;
    this.options.onCommitted(
      sizes,
      this.seq,
      start,
      batch.map((q) => q.entry),
    );
  }

  private async startNextSegment(): Promise<void> {
    if (this.handle || this.allocated > this.size) {
      const handle = await this.currentHandle();
      // A finished segment must end at its last committed record, or recovery would report it corrupt.
      await this.cutToCommitted(handle);
      this.handle = undefined;
      await handle.close();
    }
    const next = this.seq + 1;
    // O_TRUNC: a retry after a failed directory sync finds the file it created, still empty.
    const handle = await open(segmentPath(this.options.dir, next), this.openFlags() | constants.O_TRUNC, 0o640);
    try {
      if (this.options.fsync) await syncDirectory(this.options.dir);
    } catch (err) {
      await handle.close();
      throw err;
    }
    this.handle = handle;
    this.seq = next;
    this.size = 0;
    this.allocated = 0;
    this.options.onSegmentCreated(next);
    await this.preallocate();
  }

  /** Cuts the file after its last committed record (garbage of a failed batch, zeros written ahead), durably with fsync. */
  private async cutToCommitted(handle: FileHandle): Promise<void> {
    if (this.allocated <= this.size) return;
    await handle.truncate(this.size);
    if (this.options.fsync) await handle.datasync();
    this.allocated = this.size;
  }

  /**
   * With fsync, keeps at least half of PREALLOCATE_BYTES of zeros after the last record (up to the segment's size limit),
   * so commits overwrite space the file already has. Best effort: a failure here only means the next commit grows the
   * file as it would without preallocation (and a disk that cannot be written fails that commit, which reports it).
   */
  private async preallocate(): Promise<void> {
    const limit = this.options.segmentBytes;
    const chunk = Math.min(PREALLOCATE_BYTES, limit);
    if (!this.options.fsync || this.allocated >= limit || this.allocated - this.size >= chunk / 2) return;
    const end = Math.min(this.allocated + chunk, limit);
    zeros ??= Buffer.alloc(PREALLOCATE_BYTES);
    try {
      const handle = await this.currentHandle();
      let at = this.allocated;
      while (at < end) at += (await handle.write(zeros, 0, end - at, at)).bytesWritten;
    } catch {
      // Some of it may be on disk: counted below so that the next roll cuts it (recovery would too). Commits
      // meanwhile may grow the file, as they would without preallocation.
    }
    this.allocated = end;
  }

  /** With fsync every write is durable when it returns (O_DSYNC): data and the size needed to read it back. */
  private openFlags(): number {
    return constants.O_WRONLY | constants.O_CREAT | (this.options.fsync ? DSYNC : 0);
  }

  /** The current segment's handle, reopened (never truncated) after a failure closed it. */
  private async currentHandle(): Promise<FileHandle> {
    this.handle ??= await open(segmentPath(this.options.dir, this.seq), this.openFlags(), 0o640);
    return this.handle;
  }

  /** After a failure the descriptor itself may be unusable (EBADF, a remounted disk); the retry opens a fresh one. */
  private async dropHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close().catch(() => undefined);
  }
}
