import path from 'node:path';
import { formatEventTime } from '../../audit/event-time';
import { JsonlWriter } from '../../record/jsonl-writer';
import type { Region } from '../../types';
import type { SendResult, Sink, SinkBatch } from './sink';

export interface FileSinkOptions {
  dir: string;
  fsync: boolean;
  onError: (err: Error, attempt: number) => void;
}

/** Journal file of an event: `<dir>/<region>/audit-<UTC date>.jsonl`. */
export function journalFile(dir: string, region: Region, eventTime: string): string {
  return path.join(dir, region, `audit-${eventTime.slice(0, 10)}.jsonl`);
}

/** The local journal as a sink: `<dir>/<region>/audit-<UTC day>.jsonl`, one event per line. */
export class FileSink implements Sink {
  readonly name = 'file' as const;
  readonly maxBatchEvents = 10_000;
  readonly maxBatchBytes = 16 * 1024 * 1024;
  private readonly writer: JsonlWriter;

  constructor(private readonly options: FileSinkOptions) {
    this.writer = new JsonlWriter({ fsync: options.fsync, maxPending: 1_000_000, onError: options.onError, onRecovered: () => undefined });
  }

  async send(batch: SinkBatch): Promise<SendResult> {
    try {
      // One group commit for the whole batch: one write (per day file) and one fdatasync.
      await Promise.all(
        batch.records.map((r) => this.writer.append(journalFile(this.options.dir, batch.region, formatEventTime(r.timestampMs)), r.json)),
      );
      return { kind: 'delivered' };
    } catch (err) {
      return { kind: 'retry', reason: `journal write failed: ${(err as Error).message}` };
    }
  }

  private closing: Promise<void> | undefined;

  /** Idempotent: one writer serves every region's worker, and each closes it. */
  close(): Promise<void> {
    this.closing ??= this.writer.close();
    return this.closing;
  }
}
