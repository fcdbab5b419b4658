#!/usr/bin/env node
/**
 * ce-audit: the auditor's command. verify, prove, verify-proof, query, tail, keygen (docs/auditors-guide.md).
 */
import { UsageError } from './args';
import { EXIT, type Io } from './io';
import { KEYGEN_USAGE, runKeygen } from './keygen-command';
import { PROVE_USAGE, runProve } from './prove-command';
import { QUERY_USAGE, runQuery } from './query-command';
import { runTail, TAIL_USAGE } from './tail-command';
import { runVerify, VERIFY_USAGE } from './verify-command';
import { runVerifyProof, VERIFY_PROOF_USAGE } from './verify-proof-command';
import { InputError } from '../verify/inputs';

type Command = (argv: readonly string[], io: Io, signal?: AbortSignal) => Promise<number>;

const COMMANDS: Record<string, { run: Command; usage: string }> = {
  verify: { run: runVerify, usage: VERIFY_USAGE },
  prove: { run: runProve, usage: PROVE_USAGE },
  'verify-proof': { run: runVerifyProof, usage: VERIFY_PROOF_USAGE },
  query: { run: runQuery, usage: QUERY_USAGE },
  tail: { run: runTail, usage: TAIL_USAGE },
  keygen: { run: runKeygen, usage: KEYGEN_USAGE },
};

export const USAGE = `ce-audit: check and read the audit trail of ce-audit-gateway

  ce-audit verify [--public-key FILE]... [--allow-unsigned] [--json] PATH...
  ce-audit prove --event ID [--public-key FILE]... PATH...
  ce-audit verify-proof --proof FILE --event FILE --public-key FILE...
  ce-audit query PATH... [--project ID] [--action GLOB] [--outcome O] [--initiator ID] [--transaction ID]
                 [--since T] [--until T] [--json]
  ce-audit tail [-f] [-n N] [--json] DIR
  ce-audit keygen --out DIR

ce-audit COMMAND --help explains a command. Exit codes: 0 OK, 1 problems found (or a proof refused),
2 usage, 3 an input could not be read, 70 internal error. The auditor's guide: docs/auditors-guide.md.`;

export async function main(argv: readonly string[], io: Io, signal?: AbortSignal): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    io.stdout.write(`${topic && COMMANDS[topic] ? COMMANDS[topic].usage : USAGE}\n`);
    return name === undefined ? EXIT.USAGE : EXIT.OK;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr.write(`ce-audit: unknown command ${JSON.stringify(name)}\n\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(`${command.usage}\n`);
    return EXIT.OK;
  }
  try {
    return await command.run(rest, io, signal);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`ce-audit ${name}: ${err.message}\n\n${command.usage}\n`);
      return EXIT.USAGE;
    }
    if (err instanceof InputError) {
      io.stderr.write(`ce-audit ${name}: ${err.message}\n`);
      return EXIT.INPUT;
    }
    throw err;
  }
}

/** Runs ce-audit as a process: arguments, standard streams, exit code; SIGINT ends `tail -f`. */
export function cli(): void {
  const controller = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => controller.abort());
  main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }, controller.signal).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(
        `ce-audit: unexpected error (a bug: please report it): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = EXIT.INTERNAL;
    },
  );
}

if (require.main === module) cli();
