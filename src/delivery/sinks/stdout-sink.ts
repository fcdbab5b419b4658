import type { Writable } from 'node:stream';
import type { SendResult, Sink } from './sink';
import type { SinkBatch } from './sink';

/**
 * One JSON event per line on standard output, for a container log collector. The gateway's own logs are
 * JSON lines too; events are told apart by their `eventType: "activity"` and `action` fields.
 */
export class StdoutSink implements Sink {
  readonly name = 'stdout' as const;
  readonly maxBatchEvents = 10_000;
  readonly maxBatchBytes = 4 * 1024 * 1024;

  constructor(private readonly out: Writable = process.stdout) {}

  send(batch: SinkBatch): Promise<SendResult> {
    let text = '';
    for (const r of batch.records) text += `${r.json}\n`;
    return new Promise((resolve) => {
      // The callback fires once the data is handed to the OS (or failed): that is the acknowledgement.
      this.out.write(text, (err) =>
        resolve(err ? { kind: 'retry', reason: `stdout write failed: ${err.message}` } : { kind: 'delivered' }),
      );
    });
  }

  async close(): Promise<void> {}
}
