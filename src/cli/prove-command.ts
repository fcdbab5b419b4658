import { buildProof, ProofError } from '../verify/proof';
import { readTrail, verifyTrail } from '../verify/verify';
import { InputError } from '../verify/inputs';
import { one, parseArgs, UsageError } from './args';
import { EXIT, loadKeys, type Io } from './io';

export const PROVE_USAGE = `ce-audit prove --event ID [--public-key FILE]... [--allow-unsigned] PATH...

Prints the inclusion proof of one event (by its id) against the newest trusted checkpoint that covers it, in
the C2SP tlog-proof form. The trail is verified first; the checkpoint must be signed by a --public-key (or
unsigned with --allow-unsigned). Save it, with the event, for ce-audit verify-proof.

Exit: 0 proof printed, 1 no proof possible (event altered, not covered, or events missing), 2 usage, 3 input.`;

export async function runProve(argv: readonly string[], io: Io): Promise<number> {
  const args = parseArgs(argv, { event: {}, 'public-key': { repeat: true }, 'allow-unsigned': { flag: true } });
  const id = one(args, 'event');
  if (!id) throw new UsageError('prove needs --event ID');
  if (args.positional.length === 0) throw new UsageError('prove needs at least one PATH');
  const keys = await loadKeys(args.values.get('public-key') ?? []);
  const { trail } = await readTrail(args.positional, io.stdin);
  const { logs } = verifyTrail(trail, keys, args.flags.has('allow-unsigned'));
  for (const report of logs) {
    for (const v of report.chosen.values()) {
      if (v.id !== id) continue;
      try {
        io.stdout.write(buildProof(report, v).text);
        return EXIT.OK;
      } catch (err) {
        if (!(err instanceof ProofError)) throw err;
        io.stderr.write(`ce-audit prove: ${err.message}\n`);
        return EXIT.PROBLEMS;
      }
    }
  }
  throw new InputError(
    `no event with id ${id} in ${args.positional.join(', ')} (or it is not its log's event at its place: run ce-audit verify)`,
  );
}
