/**
 * What an auditor hands `ce-audit`: files, directories (every file below, in name order) or `-` (standard input),
 * each read whole (as bytes), gzip-compressed or not (LogDNA's archive is hourly .json.gz).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

export class InputError extends Error {
  override readonly name = 'InputError';
}

/** Expands directories into their files (sorted, recursively; hidden files and the gateway's own state files skipped). */
export async function expandInputs(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const visit = async (p: string, top: boolean): Promise<void> => {
    if (p === '-') {
      out.push(p);
      return;
    }
    let info;
    try {
      info = await stat(p);
    } catch (err) {
      throw new InputError(
        `${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`,
      );
    }
    if (info.isDirectory()) {
      const names = (await readdir(p)).filter((n) => !n.startsWith('.')).sort();
      for (const name of names) await visit(path.join(p, name), false);
    } else if (info.isFile() && (top || !/\.(wal|tmp)$|^chain-state\.json$|^cursor-/.test(path.basename(p)))) {
      out.push(p);
    }
  };
  for (const p of paths) await visit(p, true);
  return out;
}

async function readAll(p: string, stdin: NodeJS.ReadableStream): Promise<Buffer> {
  if (p !== '-') return readFile(p);
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

/** An input's bytes, gunzipped when they start with gzip's magic number. */
export async function readInput(p: string, stdin: NodeJS.ReadableStream = process.stdin): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readAll(p, stdin);
  } catch (err) {
    throw new InputError(`${p === '-' ? 'standard input' : p}: ${(err as Error).message}`);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (err) {
      throw new InputError(`${p}: not valid gzip (${(err as Error).message})`);
    }
  }
  return bytes;
}

/**
 * The lines of an input, decoded one at a time (an input may be larger than the longest string JavaScript holds),
 * without their line breaks (LF or CRLF).
 */
export function* linesOf(bytes: Buffer): Generator<string> {
  let at = 0;
  while (at < bytes.length) {
    let end = bytes.indexOf(0x0a, at);
    if (end < 0) end = bytes.length;
    const stop = end > at && bytes[end - 1] === 0x0d ? end - 1 : end;
    yield bytes.toString('utf8', at, stop);
    at = end + 1;
  }
}
