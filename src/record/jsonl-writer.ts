import { DurableAppender } from '../storage/durable-appender';
import { DurableFile } from '../storage/durable-file';

/** A file not written for this long is closed (yesterday's journal, say); it is opened again if needed. */
const IDLE_CLOSE_MS = 10 * 60 * 1000;

interface Line {
  file: string;
  line: string;
  /** Written by an attempt that failed on another file: the retry skips it. */
  written: boolean;
}

export interface JsonlWriterOptions {
  fsync: boolean;
  /** Events waiting at most; beyond it `append` fails at once instead of growing memory. */
  maxPending: number;
  /** A failed write (attempt from 1), or a problem found otherwise (attempt 0: a repaired or removed file). */
  onError: (err: Error, attempt: number) => void;
  onRecovered: () => void;
  /** A file was cut after its last complete line when opened (a crash or a failed write had left a partial one). */
  onRepaired?: (file: string, cutBytes: number) => void;
}

/**
 * Appends lines to files (the journal, the dead letters) through the gateway's durable-append primitive: group commit,
 * one positional write per file and batch at the end of its committed lines, then one fdatasync. A failed batch is kept
 * and retried after the file is cut back to its last committed line, so a full disk delays completion but loses nothing
 * and never leaves a torn or repeated line. A file is cut after its last complete line when it is opened.
 */
export class JsonlWriter {
  private readonly files = new Map<string, DurableFile>();
  private readonly lastWritten = new Map<string, number>();
  private readonly appender: DurableAppender<Line>;

  constructor(private readonly options: JsonlWriterOptions) {
    this.appender = new DurableAppender<Line>({
      target: {
        commit: (batch) => this.commit(batch),
        repair: async () => {
          for (const file of this.files.values()) await file.repair();
        },
        probe: async () => {
          for (const file of this.files.values()) await file.checkLinked();
        },
        finish: () => this.closeFiles(),
      },
      sizeOf: (line) => line.line.length,
      onError: options.onError,
      onRecovered: () => options.onRecovered(),
    });
  }

  get healthy(): boolean {
    return this.appender.failure === undefined && this.appender.pendingItems < this.options.maxPending;
  }

  append(file: string, line: string): Promise<void> {
    const waiting = this.appender.pendingItems;
    if (waiting >= this.options.maxPending) return Promise.reject(new Error(`journal has ${waiting} events waiting to be written`));
    return this.appender.append({ file, line, written: false }).catch((err: Error) => {
      throw err.message === 'closed' ? new Error('journal is closed') : err;
    });
  }

  /**
   * Writes what is pending (until `deadline`, if given) and closes the files. On a disk that is failing, what is pending
   * is given up at once: the journal and the dead letters are written from the spool, which keeps those events for the
   * next start. The files are cut back to their last complete line either way.
   */
  async close(deadline?: number): Promise<void> {
    await this.appender.close(this.appender.failure ? Date.now() : deadline);
  }

  private async commit(batch: readonly Line[]): Promise<void> {
    const byFile = new Map<string, Line[]>();
    for (const l of batch) {
      if (l.written) continue;
      let lines = byFile.get(l.file);
      if (!lines) byFile.set(l.file, (lines = []));
      lines.push(l);
    }
    const now = Date.now();
    for (const [name, lines] of byFile) {
      const file = await this.fileFor(name);
      await file.append(Buffer.from(`${lines.map((l) => l.line).join('\n')}\n`, 'utf8'));
      for (const l of lines) l.written = true;
      this.lastWritten.set(name, now);
    }
    for (const [name, file] of this.files) {
      if (now - (this.lastWritten.get(name) ?? now) < IDLE_CLOSE_MS) continue;
      this.files.delete(name);
      this.lastWritten.delete(name);
      await file.close();
    }
  }

  private async fileFor(name: string): Promise<DurableFile> {
    const open = this.files.get(name);
    if (open) return open;
    const { file, cutBytes } = await DurableFile.openLines(name, { fsync: this.options.fsync, dsync: false });
    if (cutBytes > 0) {
      if (this.options.onRepaired) this.options.onRepaired(name, cutBytes);
      else this.options.onError(new Error(`${name}: cut ${cutBytes} bytes of a partial last line (left by a crash or a failed write)`), 0);
    }
    this.files.set(name, file);
    return file;
  }

  private async closeFiles(): Promise<void> {
    const files = [...this.files.values()];
    this.files.clear();
    await Promise.all(files.map((f) => f.close()));
  }
}
