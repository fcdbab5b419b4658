import path from 'node:path';
import type { SinkName } from '../config';
import { JsonlWriter } from '../record/jsonl-writer';
import type { SpoolRecord } from '../spool/types';
import type { Region } from '../types';

export interface DeadLetter {
  region: Region;
  sink: SinkName;
  reason: string;
  status: number | undefined;
  records: readonly SpoolRecord[];
}

/**
 * Events a sink refused for good (wrong key, malformed, too large) are kept, with the reason, in
 * `<SPOOL_DIR>/dead-letter/<region>/<sink>.jsonl`, one line per event: nothing is silently lost, and an
 * operator can replay them once the cause is fixed. The reason text is scrubbed of every configured secret.
 */
export class DeadLetters {
  private readonly writer: JsonlWriter;

  constructor(
    private readonly dir: string,
    private readonly scrub: (text: string) => string,
    onError: (err: Error, attempt: number) => void,
  ) {
    this.writer = new JsonlWriter({ fsync: true, maxPending: 1_000_000, onError, onRecovered: () => undefined });
  }

  fileFor(region: Region, sink: SinkName): string {
    return path.join(this.dir, region, `${sink}.jsonl`);
  }

  async write(letter: DeadLetter): Promise<void> {
    const file = this.fileFor(letter.region, letter.sink);
    const at = new Date().toISOString();
    const head = JSON.stringify({
      deadLetteredAt: at,
      region: letter.region,
      sink: letter.sink,
      status: letter.status ?? null,
      reason: this.scrub(letter.reason),
    });
    // The event is already one line of JSON: embed it as is, no parse.
    await Promise.all(letter.records.map((r) => this.writer.append(file, `${head.slice(0, -1)},"event":${r.json}}`)));
  }

  close(): Promise<void> {
    return this.writer.close();
  }
}

/** A function that replaces every occurrence of the given secrets (and their basic-auth form) by [REDACTED]. */
export function secretScrubber(secrets: readonly string[]): (text: string) => string {
  const needles = secrets.flatMap((s) => [s, Buffer.from(`${s}:`).toString('base64')]).filter((s) => s.length >= 4);
  if (needles.length === 0) return (text) => text;
  const pattern = new RegExp(needles.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
  return (text) => text.replace(pattern, '[REDACTED]');
}
