import { globRegExp, matches, parseTime, readEvents, tableHeader, tableRow, type QueryFilter } from '../verify/query';
import { one, parseArgs, UsageError } from './args';
import { EXIT, type Io } from './io';

export const QUERY_USAGE = `ce-audit query PATH... [--project ID] [--action GLOB] [--outcome success|failure|unknown]
                [--initiator ID] [--transaction ID] [--since T] [--until T] [--json]

Lists the events of a trail (any input format; copies counted once), oldest first, as a table, or as JSON
lines with --json (each line an event, as ce-audit verify-proof --event takes it). It does not verify: run
ce-audit verify on the same inputs for that.

  --project ID      project id, or the whole target CRN
  --action GLOB     e.g. 'codeengine.secret*' or '*.delete' (checkpoints only when it names them:
                    ceaudit.checkpoint.create)
  --initiator ID    initiator.id (IBMid-..., iam-ServiceId-...) or initiator.name
  --transaction ID  transactionID / correlationId
  --since, --until  an ISO 8601 time (2026-11-25T18:00:00Z), or relative to now: 30m, 24h, 7d

Exit: 0 listed (even none), 2 usage, 3 an input could not be read.`;

export async function runQuery(argv: readonly string[], io: Io): Promise<number> {
  const args = parseArgs(argv, {
    project: {},
    action: {},
    outcome: {},
    initiator: {},
    transaction: {},
    since: {},
    until: {},
    json: { flag: true },
  });
  if (args.positional.length === 0) throw new UsageError('query needs at least one PATH');
  const outcome = one(args, 'outcome');
  if (outcome !== undefined && outcome !== 'success' && outcome !== 'failure' && outcome !== 'unknown') {
    throw new UsageError(`--outcome is success, failure or unknown, not ${JSON.stringify(outcome)}`);
  }
  const time = (name: string): number | undefined => {
    const v = one(args, name);
    if (v === undefined) return undefined;
    const ms = parseTime(v);
    if (ms === undefined) throw new UsageError(`--${name} takes an ISO 8601 time or 30m, 24h, 7d; not ${JSON.stringify(v)}`);
    return ms;
  };
  const filter: QueryFilter = {
    project: one(args, 'project'),
    action: one(args, 'action'),
    outcome,
    initiator: one(args, 'initiator'),
    transaction: one(args, 'transaction'),
    sinceMs: time('since'),
    untilMs: time('until'),
  };
  const action = filter.action ? globRegExp(filter.action) : undefined;
  const events = (await readEvents(args.positional, io.stdin)).filter((e) => matches(e, filter, action));
  if (args.flags.has('json')) {
    for (const e of events) io.stdout.write(`${JSON.stringify(e)}\n`);
    return EXIT.OK;
  }
  io.stdout.write(`${tableHeader()}\n`);
  for (const e of events) io.stdout.write(`${tableRow(e)}\n`);
  io.stdout.write(`${events.length} event${events.length === 1 ? '' : 's'}\n`);
  return EXIT.OK;
}
