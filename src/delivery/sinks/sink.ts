import type { SinkName } from '../../config';
import type { SpoolRecord } from '../../spool/types';
import type { Region } from '../../types';

export interface SinkBatch {
  region: Region;
  records: readonly SpoolRecord[];
}

/**
 * What became of one delivery request. Sinks never throw: every failure is one of these, and the delivery
 * worker decides what to do (a small pure decision per outcome, see worker.ts).
 */
export type SendResult =
  | { kind: 'delivered' }
  /** Try the same batch again later: 429, 5xx, network errors, timeouts. */
  | { kind: 'retry'; reason: string; status?: number; retryAfterMs?: number }
  /** 413: split the batch; a single event that is still too large is dead-lettered. */
  | { kind: 'too-large'; reason: string; status?: number }
  /** Some events were refused (LogDNA 207, Cloud Logs drops): the others are delivered. */
  | { kind: 'partial'; failed: ReadonlyArray<{ index: number; retry: boolean; reason: string; status?: number }> }
  /** Permanent (400, 401, 403, other 4xx): the batch goes to the dead-letter file. */
  | { kind: 'rejected'; reason: string; status?: number };

export interface Sink {
  readonly name: SinkName;
  /** Batch limits of this sink's API (the configured limits are capped by these). */
  readonly maxBatchEvents: number;
  readonly maxBatchBytes: number;
  send(batch: SinkBatch, signal: AbortSignal): Promise<SendResult>;
  close(): Promise<void>;
}
