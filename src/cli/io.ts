import { readFile } from 'node:fs/promises';
import { NoteFormatError, parseTrustedKey, type TrustedKey } from '../integrity/note';
import { InputError } from '../verify/inputs';

/** Where a command writes, and what it reads from standard input. */
export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

/** Exit codes of ce-audit (docs/auditors-guide.md). */
export const EXIT = {
  /** Verified: no problem. */
  OK: 0,
  /** Verification found problems, or a proof was refused. */
  PROBLEMS: 1,
  /** The command line is wrong: usage printed. */
  USAGE: 2,
  /** An input could not be read (missing file, not a key, not a proof, a file that keygen would overwrite). */
  INPUT: 3,
  /** A bug (reported with its stack). */
  INTERNAL: 70,
} as const;

/** The keys given with --public-key (PEM SPKI or signed-note verifier keys). */
export async function loadKeys(files: readonly string[]): Promise<TrustedKey[]> {
  const keys: TrustedKey[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new InputError(
        `--public-key ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
      );
    }
    try {
      keys.push(parseTrustedKey(text, file));
    } catch (err) {
      if (err instanceof NoteFormatError) throw new InputError(`--public-key ${err.message}`);
      throw err;
    }
  }
  return keys;
}
