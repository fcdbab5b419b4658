import { constants, mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { syncDirectory } from './sync-directory';

/** 0 where the platform has no O_DSYNC: each append is then followed by an fdatasync. */
const DSYNC: number = constants.O_DSYNC ?? 0;
/** Bytes read at a time when looking for the last complete line or copying a removed file back. */
const CHUNK_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;
let zeros: Buffer | undefined;

export interface DurableFileOptions {
  /** Each append is durable when it resolves. */
  fsync: boolean;
  /**
   * With fsync: the file is opened O_DSYNC, each append one durable write (one trip to the I/O threads), best for a file
   * that writes into space it already has (the spool's zeros written ahead). False: a write, then an fdatasync, which
   * measured faster for a growing file of large batches (the journal).
   */
  dsync?: boolean;
  /** Permissions of a file (and 0o750 of the directories) this creates. */
  mode?: number;
}

/** The file the gateway was writing was unlinked while open (its directory removed, or the file deleted). */
export class FileRemovedError extends Error {
  readonly code = 'EREMOVED';

  constructor(readonly file: string) {
    super(`${file} was removed while the gateway was writing it`);
    this.name = 'FileRemovedError';
  }
}

/**
 * One append-only file with a known committed length: every append is one positional write at the end of what was
 * committed before it, so a failed or short write never leaves bytes that a retry appends after. `repair` (before a
 * retry) and `close` cut the file back to the committed length. Records are never torn on disk: whatever a failed
 * write left past the committed length is cut before anything else is written.
 *
 * A file removed while open (its directory deleted, say) still accepts writes, which nobody would ever read: `checkLinked`
 * notices, and `repair` writes the whole file again at its path, from the descriptor that still holds it, before anything
 * else. Handles are closed on every path, errors included.
 */
export class DurableFile {
  private handle: FileHandle | undefined;
  /** Bytes known good: what was committed. */
  private committed: number;
  /** Bytes the file may hold past `committed` (a failed write, zeros written ahead): cut by repair, cut and close. */
  private allocated: number;
  /** Set when the open file was found unlinked: `repair` must write it back at its path. */
  private removed = false;

  private constructor(
    readonly path: string,
    private readonly options: DurableFileOptions,
    handle: FileHandle,
    size: number,
  ) {
    this.handle = handle;
    this.committed = size;
    this.allocated = size;
  }

  /** A new, empty file (an existing one is emptied), its directory entry made durable with fsync. */
  static async create(file: string, options: DurableFileOptions): Promise<DurableFile> {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o750 });
    const handle = await open(file, openFlags(options) | constants.O_CREAT | constants.O_TRUNC, options.mode ?? 0o640);
    try {
      if (options.fsync) await syncDirectory(path.dirname(file));
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
    return new DurableFile(file, options, handle, 0);
  }

  /**
   * A file of lines, created if missing, cut after its last complete line: a crash or a failed write may have left a
   * partial one, which no reader could parse. Returns the file and how many bytes were cut.
   */
  static async openLines(file: string, options: DurableFileOptions): Promise<{ file: DurableFile; cutBytes: number }> {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o750 });
    const handle = await open(file, openFlags(options) | constants.O_CREAT, options.mode ?? 0o640);
    try {
      const { size } = await handle.stat();
      const end = await endOfLastLine(handle, size);
      if (end < size) {
        await handle.truncate(end);
        if (options.fsync) await handle.datasync();
      }
      return { file: new DurableFile(file, options, handle, end), cutBytes: size - end };
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  /** Committed bytes: where the next append goes. */
  get size(): number {
    return this.committed;
  }

  /** Bytes the file holds or may hold, zeros written ahead included. */
  get allocatedBytes(): number {
    return this.allocated;
  }

  /** Writes `data` after the committed bytes, durably with fsync; committed only once all of it is. */
  async append(data: Buffer): Promise<void> {
    const handle = this.current();
    // Should the write fail part-way, the file may hold these bytes: cut by repair unless a retry overwrites them.
    this.allocated = Math.max(this.allocated, this.committed + data.length);
    let written = 0;
    // One write(); the loop only continues after a short write.
    while (written < data.length) {
      const { bytesWritten } = await handle.write(data, written, data.length - written, this.committed + written);
      if (bytesWritten === 0) throw Object.assign(new Error(`write to ${this.path} made no progress`), { code: 'EIO' });
      written += bytesWritten;
    }
    if (this.options.fsync && !usesDsync(this.options)) await handle.datasync();
    this.committed += data.length;
  }

  /**
   * Fills the file with zeros up to `end`, so later appends overwrite blocks the file already has (no size change, so no
   * filesystem journal commit per durable write). Best effort: on failure appends simply grow the file.
   */
  async fillAhead(end: number): Promise<void> {
    if (end <= this.allocated || !this.handle) return;
    zeros ??= Buffer.alloc(CHUNK_BYTES);
    const from = this.allocated;
    // Whatever part of it lands is cut by the next repair or close.
    this.allocated = end;
    try {
      for (let at = from; at < end;) at += (await this.handle.write(zeros, 0, Math.min(zeros.length, end - at), at)).bytesWritten;
    } catch {
      // Appends meanwhile grow the file, as they would without it.
    }
  }

  /** Throws FileRemovedError when the open file no longer has a name (so what is written to it would be lost). */
  async checkLinked(): Promise<void> {
    if (this.removed) throw new FileRemovedError(this.path);
    const handle = this.handle;
    if (!handle) return;
    const { nlink } = await handle.stat();
    if (nlink === 0) {
      this.removed = true;
      throw new FileRemovedError(this.path);
    }
  }

  /**
   * After a failed write, before the retry: a fresh descriptor (the old one may be unusable: EIO, a remounted disk), the
   * file written back at its path if it was removed, and cut to the committed bytes. Safe to call again after it failed.
   * True when the file had been removed and was written back.
   */
  async repair(): Promise<boolean> {
    try {
      if (await this.restoreIfRemoved()) {
        await this.cut();
        return true;
      }
    } catch (err) {
      // A descriptor that cannot even be asked about its file is replaced below; a failed copy is retried.
      if (this.removed) throw err;
    }
    const fresh = await open(this.path, openFlags(this.options));
    const old = this.handle;
    this.handle = fresh;
    await old?.close().catch(() => undefined);
    await this.cut();
    return false;
  }

  /** Writes the file back at its path if it was removed while open (see restore); true when it was. */
  async restoreIfRemoved(): Promise<boolean> {
    try {
      await this.checkLinked();
      return false;
    } catch (err) {
      if (!(err instanceof FileRemovedError)) throw err;
    }
    await this.restore();
    return true;
  }

  /** Cuts the file after its committed bytes (a failed write's remains, zeros written ahead), durably with fsync. */
  async cut(): Promise<void> {
    if (this.allocated <= this.committed) return;
    const handle = this.current();
    await handle.truncate(this.committed);
    if (this.options.fsync) await handle.datasync();
    this.allocated = this.committed;
  }

  /** Cuts back to the committed bytes (best effort: a crash leaves the same, and recovery cuts it) and closes. */
  async close(): Promise<void> {
    const handle = this.handle;
    if (!handle) return;
    try {
      if (!this.removed) await this.cut();
    } catch {
      // Recovery at the next start cuts it, like after a crash.
    } finally {
      this.handle = undefined;
      await handle.close().catch(() => undefined);
    }
  }

  /**
   * Writes the committed bytes of a removed file back at its path (directories included) from the open descriptor, then
   * continues in the new file. The old descriptor is kept until the copy is durable, so a failed copy can be retried.
   */
  private async restore(): Promise<void> {
    const old = this.handle;
    if (!old) throw new FileRemovedError(this.path);
    await mkdir(path.dirname(this.path), { recursive: true, mode: 0o750 });
    const fresh = await open(this.path, openFlags(this.options) | constants.O_CREAT | constants.O_TRUNC, this.options.mode ?? 0o640);
    try {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, Math.max(1, this.committed)));
      for (let at = 0; at < this.committed;) {
        const { bytesRead } = await old.read(buf, 0, Math.min(buf.length, this.committed - at), at);
        if (bytesRead === 0) throw new Error(`${this.path}: the removed file ends at ${at}, before its ${this.committed} committed bytes`);
        for (let done = 0; done < bytesRead;) done += (await fresh.write(buf, done, bytesRead - done, at + done)).bytesWritten;
        at += bytesRead;
      }
      if (this.options.fsync) {
        if (!usesDsync(this.options)) await fresh.datasync();
        await syncDirectory(path.dirname(this.path));
      }
    } catch (err) {
      await fresh.close().catch(() => undefined);
      throw err;
    }
    this.handle = fresh;
    this.allocated = this.committed;
    this.removed = false;
    await old.close().catch(() => undefined);
  }

  private current(): FileHandle {
    if (!this.handle) throw new Error(`${this.path} is closed`);
    return this.handle;
  }
}

function usesDsync(options: DurableFileOptions): boolean {
  return options.fsync && options.dsync !== false && DSYNC !== 0;
}

/** Read and write (a removed file is copied back from its descriptor), O_DSYNC when that is how appends are durable. */
function openFlags(options: DurableFileOptions): number {
  return constants.O_RDWR | (usesDsync(options) ? DSYNC : 0);
}

/** Where the file's last complete line ends (0 when it has none): the length it must be cut to. */
async function endOfLastLine(handle: FileHandle, size: number): Promise<number> {
  if (size === 0) return 0;
  const buf = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, size));
  for (let end = size; end > 0;) {
    const start = Math.max(0, end - buf.length);
    const length = end - start;
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await handle.read(buf, filled, length - filled, start + filled);
      if (bytesRead === 0) throw new Error(`the file shrank while its last line was looked for (at ${start + filled} of ${size} bytes)`);
      filled += bytesRead;
    }
    const at = buf.subarray(0, length).lastIndexOf(NEWLINE);
    if (at >= 0) return start + at + 1;
    end = start;
  }
  return 0;
}
