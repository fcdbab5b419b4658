import { renderJson, renderText } from '../verify/report';
import { verify } from '../verify/verify';
import { parseArgs, UsageError } from './args';
import { EXIT, loadKeys, type Io } from './io';

export const VERIFY_USAGE = `ce-audit verify [--public-key FILE]... [--allow-unsigned] [--json] PATH...

Verifies audit trails: the gateway's journal, Activity Tracker (LogDNA) exports, IBM Cloud Logs query
results or the raw stream of /v1/query, in any mix (files, directories, or - for standard input; lines in
any order, duplicates and other applications' lines allowed). Reports per log: events verified, missing
ranges, altered, forged or inserted events, broken chains, truncation behind the last checkpoint,
checkpoints verified, bad signatures, unknown keys, and events not yet covered.

  --public-key FILE   a trusted key: PEM public key (SPKI) or signed-note verifier key; repeat for rotated keys
  --allow-unsigned    accept checkpoints without a signature (a gateway run without AUDIT_SIGNING_KEY_FILE)
  --json              one JSON document instead of the report

Exit: 0 no problem, 1 problems found, 2 usage, 3 an input or key could not be read.`;

export async function runVerify(argv: readonly string[], io: Io): Promise<number> {
  const args = parseArgs(argv, { 'public-key': { repeat: true }, 'allow-unsigned': { flag: true }, json: { flag: true } });
  if (args.positional.length === 0) throw new UsageError('verify needs at least one PATH');
  const keys = await loadKeys(args.values.get('public-key') ?? []);
  const result = await verify({ paths: args.positional, keys, allowUnsigned: args.flags.has('allow-unsigned'), stdin: io.stdin });
  io.stdout.write(args.flags.has('json') ? renderJson(result) : renderText(result));
  return result.problems === 0 ? EXIT.OK : EXIT.PROBLEMS;
}
