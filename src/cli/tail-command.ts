import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { InputError } from '../verify/inputs';
import { asAuditRecord, eventTimeMs, tableHeader, tableRow, type AuditRecord } from '../verify/query';
import { one, parseArgs, UsageError } from './args';
import { EXIT, type Io } from './io';

export const TAIL_USAGE = `ce-audit tail [-f] [-n N] [--json] DIR

Prints the newest N events (default 10) of a journal directory (AT_FILE_DIR: <DIR>/<region>/audit-<day>.jsonl)
and, with -f, follows it: new events as they are written, new days and new regions included, until
interrupted. It does not verify (ce-audit verify does).

Exit: 0 (interrupted with -f), 2 usage, 3 DIR cannot be read.`;

const POLL_MS = 300;

async function journalFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) await visit(p);
      else if (entry.isFile() && entry.name.endsWith('.jsonl')) out.push(p);
    }
  };
  await visit(dir);
  return out.sort();
}

/** Reads what was appended to a file since `offset`; returns the whole lines and the new offset. */
async function readFrom(file: string, offset: number): Promise<{ lines: string[]; offset: number }> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size < offset) offset = 0; // replaced or truncated: read it again
    if (size === offset) return { lines: [], offset };
    const buf = Buffer.alloc(size - offset);
    const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
    const text = buf.subarray(0, bytesRead).toString('utf8');
    const end = text.lastIndexOf('\n');
    if (end < 0) return { lines: [], offset };
    return { lines: text.slice(0, end).split('\n'), offset: offset + Buffer.byteLength(text.slice(0, end + 1)) };
  } finally {
    await handle.close();
  }
}

export async function runTail(argv: readonly string[], io: Io, signal?: AbortSignal): Promise<number> {
  const args = parseArgs(argv, { follow: { flag: true, short: 'f' }, lines: { short: 'n' }, json: { flag: true } });
  if (args.positional.length !== 1) throw new UsageError('tail takes one journal directory');
  const dir = args.positional[0] as string;
  const n = Number(one(args, 'lines') ?? '10');
  if (!Number.isInteger(n) || n < 0) throw new UsageError('-n takes a number of events');
  try {
    if (!(await stat(dir)).isDirectory()) throw new InputError(`${dir} is not a directory`);
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`${dir}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (err as Error).message}`);
  }
  const json = args.flags.has('json');
  const print = (e: AuditRecord, line: string): void => {
    io.stdout.write(json ? `${line}\n` : `${tableRow(e)}\n`);
  };
  const offsets = new Map<string, number>();
  const first: Array<{ e: AuditRecord; line: string }> = [];
  for (const file of await journalFiles(dir)) {
    const { lines, offset } = await readFrom(file, 0);
    offsets.set(file, offset);
    for (const line of lines) {
      const e = asAuditRecord(line);
      if (e) first.push({ e, line });
    }
  }
  first.sort((a, b) => eventTimeMs(a.e) - eventTimeMs(b.e));
  if (!json) io.stdout.write(`${tableHeader()}\n`);
  for (const { e, line } of first.slice(Math.max(0, first.length - n))) print(e, line);
  if (!args.flags.has('follow')) return EXIT.OK;
  const stop = signal ?? new AbortController().signal;
  while (!stop.aborted) {
    await new Promise((resolve) => {
      const t = setTimeout(resolve, POLL_MS);
      stop.addEventListener('abort', () => {
        clearTimeout(t);
        resolve(undefined);
      });
    });
    if (stop.aborted) break;
    let files: string[];
    try {
      files = await journalFiles(dir);
    } catch {
      continue; // the directory is being rotated or re-created: try again
    }
    for (const file of files) {
      try {
        const { lines, offset } = await readFrom(file, offsets.get(file) ?? 0);
        offsets.set(file, offset);
        for (const line of lines) {
          const e = asAuditRecord(line);
          if (e) print(e, line);
        }
      } catch {
        // a file deleted between listing and reading
      }
    }
  }
  return EXIT.OK;
}
