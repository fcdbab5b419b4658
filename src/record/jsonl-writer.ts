import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

interface Pending {
  file: string;
  line: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface JsonlWriterOptions {
  fsync: boolean;
  /** Events waiting at most; beyond it `append` fails at once instead of growing memory. */
  maxPending: number;
  onError: (err: Error, attempt: number) => void;
  onRecovered: () => void;
}

const RETRY_BASE_MS = 50;
const RETRY_MAX_MS = 5000;

/**
 * Appends lines to files with group commit: every line that arrives while a write is in progress joins the
 * next batch, each batch is one write per file followed by one fdatasync. A failed batch is kept and retried
 * with backoff, so a full disk delays completion but loses nothing.
 */
export class JsonlWriter {
  private queue: Pending[] = [];
  private flushing = false;
  private closed = false;
  private failing = false;
  private readonly handles = new Map<string, FileHandle>();
  private idle: Promise<void> = Promise.resolve();
  private wakeIdle: (() => void) | undefined;

  constructor(private readonly options: JsonlWriterOptions) {}

  get healthy(): boolean {
    return !this.failing && this.queue.length < this.options.maxPending;
  }

  append(file: string, line: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('journal is closed'));
    if (this.queue.length >= this.options.maxPending) {
      return Promise.reject(new Error(`journal has ${this.queue.length} events waiting to be written`));
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ file, line, resolve, reject });
      if (!this.flushing) this.startFlush();
    });
  }

  private startFlush(): void {
    this.flushing = true;
    this.idle = new Promise<void>((resolve) => {
      this.wakeIdle = resolve;
    });
    setImmediate(() => void this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    let attempt = 0;
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        await this.writeBatch(batch);
        if (this.failing) this.options.onRecovered();
        this.failing = false;
        attempt = 0;
        for (const p of batch) p.resolve();
      } catch (err) {
        this.failing = true;
        attempt++;
        this.options.onError(err as Error, attempt);
        // Keep order: the failed batch goes back in front of whatever arrived meanwhile.
        this.queue = batch.concat(this.queue);
        await this.closeHandles();
        if (this.closed && attempt >= 3) {
          for (const p of this.queue) p.reject(err as Error);
          this.queue = [];
          break;
        }
        await new Promise((r) => setTimeout(r, Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** attempt)));
      }
    }
    this.flushing = false;
    this.wakeIdle?.();
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    const byFile = new Map<string, string[]>();
    for (const p of batch) {
      let lines = byFile.get(p.file);
      if (!lines) byFile.set(p.file, (lines = []));
      lines.push(p.line);
    }
    await Promise.all(
      [...byFile].map(async ([file, lines]) => {
        const handle = await this.handleFor(file);
        const data = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
        let offset = 0;
        while (offset < data.length) {
          const { bytesWritten } = await handle.write(data, offset, data.length - offset);
          offset += bytesWritten;
        }
        if (this.options.fsync) await handle.datasync();
      }),
    );
  }

  private async handleFor(file: string): Promise<FileHandle> {
    const existing = this.handles.get(file);
    if (existing) return existing;
    await mkdir(path.dirname(file), { recursive: true, mode: 0o750 });
    const handle = await open(file, 'a+', 0o640);
    // A crash can leave a partial last line; start on a fresh line so it never merges with a new event.
    const { size } = await handle.stat();
    if (size > 0) {
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) await handle.write('\n');
    }
    this.handles.set(file, handle);
    return handle;
  }

  /** Close files no longer written to (e.g. yesterday's). */
  async release(keep: (file: string) => boolean): Promise<void> {
    if (this.flushing) return;
    for (const [file, handle] of this.handles) {
      if (!keep(file)) {
        this.handles.delete(file);
        await handle.close();
      }
    }
  }

  private async closeHandles(): Promise<void> {
    const handles = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.flushing) await this.idle;
    await this.closeHandles();
  }
}
