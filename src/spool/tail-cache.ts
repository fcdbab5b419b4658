import type { SpoolEntry, SpoolPosition, SpoolRecord } from './types';

/**
 * The most recently committed records, kept in memory (bounded by bytes) exactly as a disk read would return
 * them. Delivery that keeps up reads from here: no read(), no decoding, no checksum, for the common case. A
 * consumer that falls behind (or a position this cache does not hold, such as a segment boundary) reads from
 * disk as before.
 */
export class TailCache {
  private records: SpoolRecord[] = [];
  /** Index of the first live record in `records` (evicted ones are dropped in bulk). */
  private head = 0;
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Records of one committed batch: `entries` written at `start` of segment `seq`, with these sizes. */
  add(seq: number, start: number, entries: readonly SpoolEntry[], sizes: readonly number[]): void {
    let offset = start;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as SpoolEntry;
      const size = sizes[i] as number;
      this.records.push({
        timestampMs: entry.timestampMs,
        severity: entry.severity,
        json: entry.json,
        position: { segment: seq, offset },
        next: { segment: seq, offset: offset + size },
        size,
      });
      offset += size;
      this.bytes += size;
    }
    while (this.bytes > this.maxBytes && this.head < this.records.length) this.bytes -= (this.records[this.head++] as SpoolRecord).size;
    // Compact now and then, so the array does not keep evicted records alive.
    if (this.head > 4096 && this.head * 2 > this.records.length) {
      this.records = this.records.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Up to maxEvents records starting exactly at `from` (maxBytes counts JSON bytes, the first record always
   * taken), or undefined when `from` is not a record this cache holds.
   */
  read(from: SpoolPosition, maxEvents: number, maxBytes: number, jsonBytes: (r: SpoolRecord) => number): SpoolRecord[] | undefined {
    let lo = this.head;
    let hi = this.records.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const p = (this.records[mid] as SpoolRecord).position;
      const cmp = p.segment - from.segment || p.offset - from.offset;
      if (cmp === 0) {
        const out: SpoolRecord[] = [];
        let bytes = 0;
        for (let i = mid; i < this.records.length && out.length < maxEvents; i++) {
          const r = this.records[i] as SpoolRecord;
          const b = jsonBytes(r);
          if (out.length > 0 && bytes + b > maxBytes) break;
          // Every committed record is here in commit order (only the oldest are ever evicted): no gaps, even
          // across a segment boundary.
          out.push(r);
          bytes += b;
        }
        return out;
      }
      if (cmp < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** Forget records of segments that were deleted or dropped. */
  forgetUpTo(seq: number): void {
    while (this.head < this.records.length && (this.records[this.head] as SpoolRecord).position.segment <= seq) {
      this.bytes -= (this.records[this.head++] as SpoolRecord).size;
    }
  }
}
