import type { Severity } from '../types';

/** A place in a region's spool: segment sequence number and byte offset within that segment. */
export interface SpoolPosition {
  segment: number;
  offset: number;
}

/** What the gateway appends: one built event. */
export interface SpoolEntry {
  /** Event time, epoch milliseconds (delivery needs it without parsing the JSON). */
  timestampMs: number;
  severity: Severity;
  /** The event as one line of JSON (no newline), at most 16 KB. */
  json: string;
}

/** A record read back from the spool. */
export interface SpoolRecord extends SpoolEntry {
  /** Where the record starts. */
  position: SpoolPosition;
  /** Where the next record starts: the cursor value once this record is acknowledged. */
  next: SpoolPosition;
  /** Size of the record on disk, header included. */
  size: number;
}

export interface RegionSpoolOptions {
  /** Directory of this region's segments and cursors (created if missing). */
  dir: string;
  /** fdatasync each group commit before append() resolves. */
  fsync: boolean;
  /** A segment is closed and a new one started once it reaches this size. */
  segmentBytes: number;
  /** Names of the consumers (sinks), each with its own persisted cursor. */
  consumers: readonly string[];
  /** A failed write or fsync (attempt from 1), or a problem found otherwise (attempt 0); the spool keeps the batch and retries. */
  onError?: (err: Error, attempt: number) => void;
  /**
   * Awaited before any segment file is deleted (delivered, or dropped when full), by whoever keeps state derived from
   * the records (the audit chain) and must save it first; when it rejects, nothing is deleted this time. With it,
   * open() leaves the segments every consumer has passed for the first collect().
   */
  beforeDelete?: () => Promise<void>;
  /** Writes succeed again after failing for this long. */
  onRecovered?: (failedForMs: number) => void;
  /** Undelivered events lost because their segment files were removed from under the spool. */
  onLost?: (events: number) => void;
}

/** What `RegionSpool.open` found on disk and repaired. */
export interface SpoolRecoveryReport {
  /** Segment files found at open (before the new segment for writing was started). */
  segments: number;
  /** Valid records kept in them. */
  records: number;
  /** Bytes cut off the segments: torn tails left by a crash and everything after a corrupt record. */
  truncatedBytes: number;
  /** Zeros cut off the end of the newest segment: space filled in ahead of the records (fsync on), left by a crash. */
  unusedBytes: number;
  /** Segments other than the newest with a corrupt record (each also reported through onError). */
  corruptSegments: number;
}
