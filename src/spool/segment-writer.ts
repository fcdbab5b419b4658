import { DurableAppender, type AppendFailure } from '../storage/durable-appender';
import { DurableFile } from '../storage/durable-file';
import { encodeRecords, type EncodableEntry } from './record-codec';
import { segmentPath } from './segment-files';

/**
 * With fsync, a segment is filled with zeros this far ahead of its last record (at most to its size limit). A commit then
 * overwrites blocks the file already has: the file's size does not change, so the durable write needs no filesystem
 * journal commit (on ext4, a growing file's fdatasync waits for one, shared with every other metadata change on the disk).
 */
const PREALLOCATE_BYTES = 1024 * 1024;

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
  /** A failed write (attempt from 1) or a problem found while idle (attempt 0); the batch is kept and retried. */
  onError: (err: Error, attempt: number) => void;
  /** Writes succeed again after failing for this long. */
  onRecovered?: (failedForMs: number) => void;
  /** The segment being written was removed while open and has just been written back, whole, at its path. */
  onRestored?: (seq: number) => void;
}

/** What waits to be written: an entry, or a request to finish the segment before the entries after it. */
type Item = { entry: EncodableEntry } | { roll: true; done: boolean };

/**
 * Appends records to the newest segment through the gateway's durable-append primitive (DurableAppender + DurableFile):
 * group commit, each batch one positional write at the segment's committed end, with fsync an O_DSYNC write into space
 * zero-filled ahead of time (PREALLOCATE_BYTES). A failed batch is kept (in order, in front of later arrivals), the segment
 * is cut back to its last committed record, and the batch is retried. A finished segment ends at its last record.
 */
export class SegmentWriter {
  private readonly appender: DurableAppender<Item>;
  private file: DurableFile | undefined;
  private seq: number;

  constructor(
    private readonly options: SegmentWriterOptions,
    firstSeq: number,
  ) {
    this.seq = firstSeq - 1;
    this.appender = new DurableAppender<Item>({
      target: {
        commit: (batch) => this.commit(batch),
        repair: async () => {
          if (await this.file?.repair()) this.options.onRestored?.(this.seq);
        },
        probe: async () => this.file?.checkLinked(),
        finish: async () => {
          const file = this.file;
          this.file = undefined;
          await file?.close();
        },
      },
      sizeOf: (item) => ('entry' in item ? item.entry.jsonBytes : 0),
      onError: options.onError,
      onRecovered: options.onRecovered,
    });
  }

  /** Sequence number of the segment being written. */
  get segment(): number {
    return this.seq;
  }

  /** Set while writes fail. */
  get failure(): AppendFailure | undefined {
    return this.appender.failure;
  }

  /** Events waiting to be made durable, and their bytes. */
  get pendingEvents(): number {
    return this.appender.pendingItems;
  }

  get pendingBytes(): number {
    return this.appender.pendingBytes;
  }

  writingForMs(now?: number): number {
    return this.appender.writingForMs(now);
  }

  /** Entries not yet durable, oldest first. */
  unwritten(): EncodableEntry[] {
    return this.appender.unwritten().flatMap((item) => ('entry' in item ? [item.entry] : []));
  }

  /** Creates the first segment. Fails (rather than retrying) so that open() reports an unusable directory. */
  async start(): Promise<void> {
    await this.startNextSegment();
  }

  append(entry: EncodableEntry): Promise<void> {
    return this.appender.append({ entry }).catch((err: Error) => {
      throw err.message === 'closed' ? new Error('spool is closed') : err;
    });
  }

  /** Finishes the current segment and starts the next one, before the entries appended after this call. */
  roll(): Promise<void> {
    return this.appender.append({ roll: true, done: false }).catch((err: Error) => {
      throw err.message === 'closed' ? new Error('spool is closed') : err;
    });
  }

  /** Writes what is pending (until `deadline`, if given) and closes the segment; returns the entries never written. */
  async close(deadline?: number): Promise<EncodableEntry[]> {
    const left = await this.appender.close(deadline);
    return left.flatMap((item) => ('entry' in item ? [item.entry] : []));
  }

  private async commit(batch: readonly Item[]): Promise<void> {
    const entries: EncodableEntry[] = [];
    let roll = false;
    for (const item of batch) {
      if ('entry' in item) entries.push(item.entry);
      else if (!item.done) roll = true;
    }
    // Checked before the batch, so a batch may overflow a segment a little but never waits on a roll it did not need.
    if (roll || !this.file || (entries.length > 0 && this.file.size >= this.options.segmentBytes)) {
      await this.startNextSegment();
      // A retry of this batch (should its write fail) must not roll again.
      for (const item of batch) if ('roll' in item) item.done = true;
    }
    const file = this.file as DurableFile;
    if (entries.length > 0) {
      const { data, sizes } = encodeRecords(entries);
      const start = file.size;
      await file.append(data);
      this.options.onCommitted(sizes, this.seq, start, entries);
    }
    // Appends that arrive meanwhile wait for it: once per PREALLOCATE_BYTES / 2 of records.
    await this.preallocate(file);
  }

  private async startNextSegment(): Promise<void> {
    const current = this.file;
    if (current) {
      // A removed segment is written back first: closing its descriptor would lose what only it still holds.
      if (await current.restoreIfRemoved()) this.options.onRestored?.(this.seq);
      // A finished segment must end at its last committed record, or recovery would report it corrupt.
      await current.cut();
      this.file = undefined;
      await current.close();
    }
    const next = this.seq + 1;
    // Emptied if it exists: a retry after a failed directory sync finds the file it created, still empty.
    this.file = await DurableFile.create(segmentPath(this.options.dir, next), { fsync: this.options.fsync });
    this.seq = next;
    this.options.onSegmentCreated(next);
    await this.preallocate(this.file);
  }

  /**
   * With fsync, keeps at least half of PREALLOCATE_BYTES of zeros after the last record (up to the segment's size limit),
   * so commits overwrite space the file already has. Best effort (see DurableFile.fillAhead).
   */
  private async preallocate(file: DurableFile): Promise<void> {
    const limit = this.options.segmentBytes;
    const chunk = Math.min(PREALLOCATE_BYTES, limit);
    if (!this.options.fsync || file.allocatedBytes >= limit || file.allocatedBytes - file.size >= chunk / 2) return;
    await file.fillAhead(Math.min(file.allocatedBytes + chunk, limit));
  }
}
