import { OffsetList } from './offset-list';
import type { SpoolPosition } from './types';

/** One segment as far as readers are concerned: only records made durable by a finished group commit. */
export interface SegmentState {
  readonly seq: number;
  /** Durable bytes: where the next record starts. */
  bytes: number;
  readonly offsets: OffsetList;
}

/** A record slot: segment index in the catalog and record index in it (`record === count` means past its last record). */
export interface Location {
  index: number;
  record: number;
}

/**
 * In-memory index of the durable records on disk, oldest segment first; the last segment is the one being written.
 * All methods are synchronous, so a Location is only valid until the next await.
 */
export class SegmentCatalog {
  private readonly segments: SegmentState[] = [];
  private bytesTotal = 0;
  private recordsTotal = 0;

  get totalBytes(): number {
    return this.bytesTotal;
  }

  get totalRecords(): number {
    return this.recordsTotal;
  }

  get list(): readonly SegmentState[] {
    return this.segments;
  }

  get oldest(): SegmentState {
    return this.segmentAt(0);
  }

  get newest(): SegmentState {
    return this.segmentAt(this.segments.length - 1);
  }

  segmentAt(index: number): SegmentState {
    const seg = this.segments[index];
    if (!seg) throw new RangeError(`no segment at index ${index} (catalog holds ${this.segments.length})`);
    return seg;
  }

  /** Adds a segment after the newest one: a recovered one at open, or the next one the writer started. */
  add(seq: number, bytes = 0, offsets = new OffsetList()): void {
    const last = this.segments[this.segments.length - 1];
    if (last && seq <= last.seq) throw new Error(`segment ${seq} added after segment ${last.seq}`);
    this.segments.push({ seq, bytes, offsets });
    this.bytesTotal += bytes;
    this.recordsTotal += offsets.length;
  }

  /** Records of a finished group commit, all in the newest segment. */
  commit(sizes: readonly number[]): void {
    const seg = this.newest;
    for (const size of sizes) {
      seg.offsets.push(seg.bytes);
      seg.bytes += size;
      this.bytesTotal += size;
    }
    this.recordsTotal += sizes.length;
  }

  /** Forgets the oldest segment (its file is deleted by the caller). */
  removeOldest(): SegmentState {
    if (this.segments.length < 2) throw new Error('the segment being written cannot be removed');
    const seg = this.oldest;
    this.segments.shift();
    this.bytesTotal -= seg.bytes;
    this.recordsTotal -= seg.offsets.length;
    return seg;
  }

  /**
   * The first durable record at or after `pos`, or the end of the spool. A position in a deleted segment moves to the next
   * existing one, a position between records to the next record, and the end of a finished segment to the start of the next.
   */
  resolve(pos: SpoolPosition): Location {
    let index = this.firstIndexAtOrAfter(pos.segment);
    if (index === this.segments.length) return this.endLocation();
    let seg = this.segmentAt(index);
    let record = seg.seq === pos.segment ? seg.offsets.lowerBound(pos.offset) : 0;
    while (record >= seg.offsets.length && index < this.segments.length - 1) {
      index++;
      record = 0;
      seg = this.segmentAt(index);
    }
    return { index, record };
  }

  position(loc: Location): SpoolPosition {
    const seg = this.segmentAt(loc.index);
    return { segment: seg.seq, offset: loc.record < seg.offsets.length ? seg.offsets.at(loc.record) : seg.bytes };
  }

  endLocation(): Location {
    const index = this.segments.length - 1;
    return { index, record: this.segmentAt(index).offsets.length };
  }

  /** Size on disk of one record, header included. */
  recordSize(seg: SegmentState, record: number): number {
    const end = record + 1 < seg.offsets.length ? seg.offsets.at(record + 1) : seg.bytes;
    return end - seg.offsets.at(record);
  }

  /** Durable records at and after `loc`. Walks the segments before it, which are few: passed segments get deleted. */
  recordsFrom(loc: Location): number {
    let before = loc.record;
    for (let i = 0; i < loc.index; i++) before += this.segmentAt(i).offsets.length;
    return this.recordsTotal - before;
  }

  /** Durable bytes at and after `loc`. */
  bytesFrom(loc: Location): number {
    let before = this.position(loc).offset;
    for (let i = 0; i < loc.index; i++) before += this.segmentAt(i).bytes;
    return this.bytesTotal - before;
  }

  private firstIndexAtOrAfter(seq: number): number {
    let lo = 0;
    let hi = this.segments.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.segments[mid]?.seq ?? Infinity) < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
