import { open } from 'node:fs/promises';
import { checkFrame, decodeFrame, payloadBytes } from './record-codec';
import type { SegmentCatalog } from './segment-catalog';
import { segmentPath } from './segment-files';
import type { SpoolPosition, SpoolRecord } from './types';

/** Bytes asked of each read(): a few syscalls per MiB of events, never one per record. */
const READ_CHUNK_BYTES = 1024 * 1024;

/** Consecutive durable records of one segment, chosen from the in-memory index. */
export interface ReadSpan {
  seq: number;
  /** Offset of the first record. */
  start: number;
  /** Size of each record, in order. */
  sizes: number[];
}

/**
 * Reads the planned records. Boundaries come from the index, so each chunk read ends on a record boundary and holds at
 * least one whole record. A record that no longer checks out (the disk changed it since it was written or recovered) is
 * reported and skipped: it cannot be delivered, and stopping there would block the consumer forever.
 */
export async function readSpans(dir: string, spans: readonly ReadSpan[], onCorrupt: (err: Error) => void): Promise<SpoolRecord[]> {
  const records: SpoolRecord[] = [];
  let buf = Buffer.alloc(0);
  for (const span of spans) {
    const file = segmentPath(dir, span.seq);
    const handle = await open(file, 'r');
    try {
      let first = 0;
      let offset = span.start;
      while (first < span.sizes.length) {
        let last = first;
        let bytes = span.sizes[first] ?? 0;
        while (last + 1 < span.sizes.length && bytes + (span.sizes[last + 1] ?? 0) <= READ_CHUNK_BYTES) bytes += span.sizes[++last] ?? 0;
        if (buf.length < bytes) buf = Buffer.allocUnsafe(Math.max(bytes, Math.min(READ_CHUNK_BYTES, 2 * buf.length)));
        let filled = 0;
        while (filled < bytes) {
          const { bytesRead } = await handle.read(buf, filled, bytes - filled, offset + filled);
          if (bytesRead === 0) throw new Error(`spool segment ${file} ends at ${offset + filled}, before its indexed records`);
          filled += bytesRead;
        }
        let at = 0;
        for (let i = first; i <= last; i++) {
          const size = span.sizes[i] ?? 0;
          const frame = checkFrame(buf, at, at + size);
          const position = { segment: span.seq, offset: offset + at };
          if (frame.kind === 'valid' && frame.size === size) {
            records.push({ ...decodeFrame(buf, at, size), position, next: { segment: span.seq, offset: position.offset + size }, size });
          } else {
            const reason = frame.kind === 'corrupt' ? frame.reason : 'length changed';
            onCorrupt(new Error(`spool segment ${file}: record at offset ${position.offset} is corrupt (${reason}); skipped`));
          }
          at += size;
        }
        offset += bytes;
        first = last + 1;
      }
    } finally {
      await handle.close();
    }
  }
  return records;
}

/**
 * Chooses the records a read returns, from the index alone: starting at the first durable record at or after `from`, up
 * to maxEvents, stopping before the record that would take the JSON bytes over maxBytes (but always taking the first one).
 */
export function planRead(catalog: SegmentCatalog, from: SpoolPosition, maxEvents: number, maxBytes: number): ReadSpan[] {
  const spans: ReadSpan[] = [];
  const segments = catalog.list;
  let { index, record } = catalog.resolve(from);
  let events = 0;
  let bytes = 0;
  let span: ReadSpan | undefined;
  while (events < maxEvents) {
    const seg = segments[index];
    if (!seg) break;
    if (record >= seg.offsets.length) {
      index++;
      record = 0;
      continue;
    }
    const size = catalog.recordSize(seg, record);
    const jsonBytes = payloadBytes(size);
    if (events > 0 && bytes + jsonBytes > maxBytes) break;
    if (span?.seq !== seg.seq) {
      span = { seq: seg.seq, start: seg.offsets.at(record), sizes: [] };
      spans.push(span);
    }
    span.sizes.push(size);
    events++;
    bytes += jsonBytes;
    record++;
  }
  return spans;
}
