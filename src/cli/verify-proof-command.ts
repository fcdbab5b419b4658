import { readFile } from 'node:fs/promises';
import { parseInput } from '../verify/formats';
import { InputError, readInput } from '../verify/inputs';
import { checkProof } from '../verify/proof';
import { one, parseArgs, UsageError } from './args';
import { EXIT, loadKeys, type Io } from './io';

export const VERIFY_PROOF_USAGE = `ce-audit verify-proof --proof FILE --event FILE --public-key FILE... [--allow-unsigned]

Checks an inclusion proof (from ce-audit prove) with only the proof, the event and the public key: the
event's hash is recomputed from its content, proved into the checkpoint's Merkle root, and the checkpoint's
signature checked. The event file holds the event as any copy has it (a journal line, an export line with
_line, a Cloud Logs result); - reads it from standard input.

Exit: 0 the event is in the log, 1 the proof does not hold, 2 usage, 3 a file could not be read.`;

async function readBytes(file: string, io: Io, what: string): Promise<Buffer> {
  try {
    return file === '-' ? await readInput('-', io.stdin) : await readFile(file);
  } catch (err) {
    throw new InputError(`${what} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

export async function runVerifyProof(argv: readonly string[], io: Io): Promise<number> {
  const args = parseArgs(argv, { proof: {}, event: {}, 'public-key': { repeat: true }, 'allow-unsigned': { flag: true } });
  const proofFile = one(args, 'proof');
  const eventFile = one(args, 'event');
  if (!proofFile || !eventFile) throw new UsageError('verify-proof needs --proof FILE and --event FILE');
  if (args.positional.length > 0) throw new UsageError(`unexpected ${args.positional.join(' ')}`);
  const keys = await loadKeys(args.values.get('public-key') ?? []);
  if (keys.length === 0 && !args.flags.has('allow-unsigned'))
    throw new UsageError('verify-proof needs --public-key (or --allow-unsigned for an unsigned trail)');
  const proof = (await readBytes(proofFile, io, '--proof')).toString('utf8');
  const candidates = parseInput(eventFile, await readBytes(eventFile, io, '--event')).candidates;
  if (candidates.length !== 1) throw new InputError(`--event ${eventFile}: expected one event, found ${candidates.length}`);
  const check = checkProof(proof, (candidates[0] as { text: string }).text, keys, args.flags.has('allow-unsigned'));
  io.stdout.write(`${check.lines.join('\n')}\n`);
  return check.ok ? EXIT.OK : EXIT.PROBLEMS;
}
