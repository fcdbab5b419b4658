import path from 'node:path';
import type { RecordedEvent, Region } from '../types';
import { JsonlWriter } from './jsonl-writer';
import type { EventRecorder } from './recorder';

export interface FileJournalOptions {
  dir: string;
  fsync: boolean;
  onError: (err: Error, attempt: number) => void;
  onRecovered: () => void;
}

const MAX_PENDING = 100_000;

/** Journal file of an event: `<dir>/<region>/audit-<UTC date>.jsonl`. */
export function journalFile(dir: string, region: Region, eventTime: string): string {
  return path.join(dir, region, `audit-${eventTime.slice(0, 10)}.jsonl`);
}

/** The local journal: one JSON event per line, one file per region and UTC day, fsynced by group commit. */
export class FileJournal implements EventRecorder {
  private readonly writer: JsonlWriter;
  private currentDay = '';

  constructor(private readonly options: FileJournalOptions) {
    this.writer = new JsonlWriter({
      fsync: options.fsync,
      maxPending: MAX_PENDING,
      onError: options.onError,
      onRecovered: options.onRecovered,
    });
  }

  record(event: RecordedEvent): Promise<void> {
    const day = event.eventTime.slice(0, 10);
    if (day > this.currentDay) {
      const previous = this.currentDay;
      this.currentDay = day;
      if (previous) void this.writer.release((file) => !file.endsWith(`audit-${previous}.jsonl`) || file.includes(day));
    }
    return this.writer.append(journalFile(this.options.dir, event.region, event.eventTime), event.json);
  }

  isHealthy(): boolean {
    return this.writer.healthy;
  }

  close(): Promise<void> {
    return this.writer.close();
  }
}
