import { open, type FileHandle } from 'node:fs/promises';
import { OffsetList } from './offset-list';
import { checkFrame, MAX_RECORD_BYTES } from './record-codec';
import { listSegments, segmentPath } from './segment-files';
import type { SpoolRecoveryReport } from './types';

/** Bytes asked of each read() while scanning: large, so a scan costs a few syscalls per MiB, not one per record. */
const SCAN_READ_BYTES = 1024 * 1024;

export interface RecoveredSegment {
  seq: number;
  /** Size after truncation: the end of the last valid record. */
  bytes: number;
  offsets: OffsetList;
}

export interface Recovery {
  segments: RecoveredSegment[];
  report: SpoolRecoveryReport;
}

interface Scan {
  offsets: OffsetList;
  validBytes: number;
  fileBytes: number;
  /** Why the scan stopped before the end of the file, if it did. */
  problem: { offset: number; reason: string } | undefined;
}

/**
 * Validates every record of every segment (open time only) and cuts each segment at its first invalid record. In the newest
 * segment that is the torn tail of a crash mid-write, or the zeros written ahead of the records, expected and silent. In an
 * older segment it is corruption: reported, and the rest of that segment is discarded too, since record boundaries after a
 * damaged length cannot be trusted.
 */
export async function recoverSegments(dir: string, fsync: boolean, onCorrupt: (err: Error) => void): Promise<Recovery> {
  const seqs = await listSegments(dir);
  const report: SpoolRecoveryReport = { segments: seqs.length, records: 0, truncatedBytes: 0, unusedBytes: 0, corruptSegments: 0 };
  const segments: RecoveredSegment[] = [];
  for (const [i, seq] of seqs.entries()) {
    const file = segmentPath(dir, seq);
    const handle = await open(file, 'r+');
    try {
      const scan = await scanSegment(handle);
      if (scan.problem) {
        const discarded = scan.fileBytes - scan.validBytes;
        // Trailing zeros are the space the writer fills in ahead of its records (see SegmentWriter): no record was there.
        const zerosFrom = await zeroTailStart(handle, scan.validBytes, scan.fileBytes);
        if (i < seqs.length - 1) {
          report.corruptSegments++;
          onCorrupt(
            new Error(
              `spool segment ${file}: ${scan.problem.reason} in the record at offset ${scan.problem.offset}; ` +
                `discarding ${discarded} bytes from there to the end of the segment`,
            ),
          );
        }
        await handle.truncate(scan.validBytes);
        if (fsync) await handle.datasync();
        report.truncatedBytes += zerosFrom - scan.validBytes;
        report.unusedBytes += scan.fileBytes - zerosFrom;
      }
      report.records += scan.offsets.length;
      segments.push({ seq, bytes: scan.validBytes, offsets: scan.offsets });
    } finally {
      await handle.close();
    }
  }
  return { segments, report };
}

/** Where the run of zero bytes that ends the range [from, to) of the file starts (`to` when its last byte is not zero). */
async function zeroTailStart(handle: FileHandle, from: number, to: number): Promise<number> {
  const buf = Buffer.allocUnsafe(Math.min(SCAN_READ_BYTES, to - from));
  let start = from;
  for (let at = from; at < to;) {
    const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, to - at), at);
    if (bytesRead === 0) return to;
    for (let i = bytesRead - 1; i >= 0; i--) {
      if (buf[i] !== 0) {
        start = at + i + 1;
        break;
      }
    }
    at += bytesRead;
  }
  return start;
}

async function scanSegment(handle: FileHandle): Promise<Scan> {
  const { size } = await handle.stat();
  const offsets = new OffsetList();
  // Room for a full read plus the unparsed rest of the previous one (less than one record).
  const buf = Buffer.allocUnsafe(SCAN_READ_BYTES + MAX_RECORD_BYTES);
  let bufStart = 0; // file offset of buf[0]
  let bufEnd = 0;
  let at = 0;
  for (;;) {
    const frame = checkFrame(buf, at, bufEnd);
    if (frame.kind === 'valid') {
      offsets.push(bufStart + at);
      at += frame.size;
      continue;
    }
    const offset = bufStart + at;
    if (frame.kind === 'corrupt') return { offsets, validBytes: offset, fileBytes: size, problem: { offset, reason: frame.reason } };
    if (bufStart + bufEnd >= size) {
      const problem = offset < size ? { offset, reason: 'torn record' } : undefined;
      return { offsets, validBytes: offset, fileBytes: size, problem };
    }
    buf.copy(buf, 0, at, bufEnd);
    bufEnd -= at;
    bufStart += at;
    at = 0;
    const want = Math.min(buf.length - bufEnd, size - (bufStart + bufEnd));
    const { bytesRead } = await handle.read(buf, bufEnd, want, bufStart + bufEnd);
    // The file shrank under us (it should not: nothing else writes here); what was read is all there is.
    if (bytesRead === 0) return { offsets, validBytes: offset, fileBytes: size, problem: { offset, reason: 'unexpected end of file' } };
    bufEnd += bytesRead;
  }
}
