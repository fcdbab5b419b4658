/**
 * On-disk format of a region spool, a write-ahead log.
 *
 * Files in the spool directory (anything else is ignored):
 *   seg-<16-digit zero-padded sequence>.wal   segments, in sequence order; only the newest one is ever appended to,
 *                                              and every open() starts a new one (a recovered segment is never extended)
 *   cursor-<consumer>.json                     {"segment":n,"offset":n}: the position after the last record the consumer
 *                                              acknowledged; replaced atomically (temp file + rename)
 *
 * A segment is a plain concatenation of records with no file header. One record, integers big-endian:
 *   0   u32  length       bytes after the crc field: the rest of the header (12) plus the payload
 *   4   u32  crc32        CRC-32 (zlib / IEEE 802.3) of exactly those `length` bytes
 *   8   f64  timestampMs  event time
 *   16  u8   severity     0 normal, 1 warning, 2 critical
 *   17  3 bytes           reserved, zero
 *   20  payload          the event JSON, UTF-8, no newline
 * The crc covers everything after itself, so a torn or bit-flipped record is detected. The length is sanity-checked
 * before it is trusted: a zero-filled tail reads as length 0 and is rejected. With fsync on, the segment being written
 * runs on into zeros written ahead of its records (SegmentWriter); a finished segment ends at its last record.
 */
import { crc32 } from 'node:zlib';
import type { Severity } from '../types';
import type { SpoolEntry } from './types';

/** length + crc: the part of the header the crc does not cover. */
const FRAME_PREFIX_BYTES = 8;
/** timestamp + severity + reserved: the part of the header the crc covers. */
const CHECKED_HEADER_BYTES = 12;
export const RECORD_HEADER_BYTES = FRAME_PREFIX_BYTES + CHECKED_HEADER_BYTES;
/** Events are at most 16 KB; the codec accepts up to 1 MiB so a slightly oversized event is still kept rather than lost. */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;
export const MAX_RECORD_BYTES = RECORD_HEADER_BYTES + MAX_PAYLOAD_BYTES;

const SEVERITY_CODES: Readonly<Record<Severity, number>> = { normal: 0, warning: 1, critical: 2 };
const SEVERITIES: readonly Severity[] = ['normal', 'warning', 'critical'];

export function isSeverity(value: unknown): value is Severity {
  return typeof value === 'string' && Object.hasOwn(SEVERITY_CODES, value);
}

/** An entry ready to encode; the byte length is computed once, when it is accepted. */
export interface EncodableEntry extends SpoolEntry {
  jsonBytes: number;
}

export interface EncodedBatch {
  data: Buffer;
  /** Size on disk of each record, in order. */
  sizes: number[];
}

/** Encodes a batch into one buffer so it can be written with a single write(). */
export function encodeRecords(entries: readonly EncodableEntry[]): EncodedBatch {
  let total = 0;
  for (const e of entries) total += RECORD_HEADER_BYTES + e.jsonBytes;
  const data = Buffer.allocUnsafe(total);
  const sizes: number[] = [];
  let at = 0;
  for (const e of entries) {
    const size = RECORD_HEADER_BYTES + e.jsonBytes;
    data.writeUInt32BE(CHECKED_HEADER_BYTES + e.jsonBytes, at);
    data.writeDoubleBE(e.timestampMs, at + 8);
    data.writeUInt8(SEVERITY_CODES[e.severity], at + 16);
    data.fill(0, at + 17, at + RECORD_HEADER_BYTES);
    data.write(e.json, at + RECORD_HEADER_BYTES, e.jsonBytes, 'utf8');
    data.writeUInt32BE(crc32(data.subarray(at + FRAME_PREFIX_BYTES, at + size)), at + 4);
    sizes.push(size);
    at += size;
  }
  return { data, sizes };
}

export type FrameCheck =
  | { kind: 'valid'; size: number }
  /** The buffer ends before the record does: read more, or, at the end of the file, a torn write. */
  | { kind: 'incomplete' }
  | { kind: 'corrupt'; reason: string };

/** Validates the record starting at `at` in `buf[0, end)` without decoding its payload. */
export function checkFrame(buf: Buffer, at: number, end: number): FrameCheck {
  if (end - at < FRAME_PREFIX_BYTES) return { kind: 'incomplete' };
  const length = buf.readUInt32BE(at);
  if (length < CHECKED_HEADER_BYTES || length > CHECKED_HEADER_BYTES + MAX_PAYLOAD_BYTES) {
    return { kind: 'corrupt', reason: `implausible record length ${length}` };
  }
  const size = FRAME_PREFIX_BYTES + length;
  if (end - at < size) return { kind: 'incomplete' };
  const expected = buf.readUInt32BE(at + 4);
  if (crc32(buf.subarray(at + FRAME_PREFIX_BYTES, at + size)) !== expected) return { kind: 'corrupt', reason: 'crc mismatch' };
  // Covered by the crc, so these only fail for a record written by something else than this codec.
  const severity = buf.readUInt8(at + 16);
  if (severity >= SEVERITIES.length) return { kind: 'corrupt', reason: `unknown severity ${severity}` };
  if (buf.readUIntBE(at + 17, 3) !== 0) return { kind: 'corrupt', reason: 'reserved bytes are not zero' };
  return { kind: 'valid', size };
}

/** Bytes of the event JSON in a record of this size on disk (the size less the header). */
export function payloadBytes(recordSize: number): number {
  return recordSize - RECORD_HEADER_BYTES;
}

/** Decodes a record that `checkFrame` reported valid with this `size`. */
export function decodeFrame(buf: Buffer, at: number, size: number): SpoolEntry {
  return {
    timestampMs: buf.readDoubleBE(at + 8),
    severity: SEVERITIES[buf.readUInt8(at + 16)] ?? 'normal',
    json: buf.toString('utf8', at + RECORD_HEADER_BYTES, at + size),
  };
}
