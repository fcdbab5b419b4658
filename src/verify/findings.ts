/**
 * What `ce-audit verify` reports. Problems make it exit 1; notes describe the trail (what it covers, what it cannot
 * say). docs/auditors-guide.md explains each one.
 */

export const PROBLEMS = {
  ALTERED: 'an event whose content does not match its hash, or is not the event its log holds at that place',
  VIEW_ALTERED: 'an Activity Tracker export whose fields beside _line differ from the event in _line',
  FORGED: 'an event that claims a place in a log that holds another event there',
  FORK: 'two signed checkpoints, or two chained events, that give the same log two different histories',
  BROKEN_CHAIN: 'an event whose prev is not the hash of the event before it',
  MISSING: 'events absent from a range of the log that a checkpoint covers',
  TRUNCATED: 'the newest events before the last checkpoint are absent',
  ROOT_MISMATCH: 'a signed checkpoint whose Merkle root does not match the events it covers',
  BAD_CHECKPOINT: 'a checkpoint that is malformed or does not fit its place in the log',
  BAD_SIGNATURE: 'a checkpoint signature by a trusted key that does not verify',
  UNKNOWN_KEY: 'a checkpoint signed only by keys not given with --public-key',
  UNSIGNED: 'a checkpoint without a signature (the gateway ran without AUDIT_SIGNING_KEY_FILE)',
  NOT_CHECKED: 'signed checkpoints, but no --public-key to check them with',
  MALFORMED: 'an integrity block that is not one',
  NO_EVENTS: 'no event of ce-audit-gateway in the input',
} as const;

export const NOTES = {
  UNCOVERED: 'events after the newest checkpoint: chained, but no signed checkpoint covers them yet',
  UNANCHORED: 'events no checkpoint could be tied to (a gap in the chain above them, or no checkpoint in the input)',
  WINDOW: 'the log starts before the input does: earlier events are not in it',
  DUPLICATES: 'identical copies of an event (an export overlap, a redelivery after a crash)',
  RESTART: 'the gateway started again without a shutdown checkpoint (a crash); the log continued',
  NEW_LOG: 'a log that starts where another one could not be continued',
  ROOT_NOT_RECOMPUTED:
    'checkpoints whose root could not be recomputed (their earlier events are not in the input); their chain was checked',
  UNCHAINED: 'events without an integrity block (IBM services, or another writer): not verified',
  FOREIGN: 'lines of other applications, ignored',
} as const;

export type ProblemCode = keyof typeof PROBLEMS;
export type NoteCode = keyof typeof NOTES;

export interface Finding {
  code: ProblemCode | NoteCode;
  problem: boolean;
  message: string;
  /** The events concerned: single sequence numbers or ranges. */
  seqs?: Array<number | [number, number]>;
  /** Event id and where the event was found, when one event is meant. */
  id?: string;
  sources?: string[];
  fields?: string[];
}

export function problem(code: ProblemCode, message: string, extra: Omit<Finding, 'code' | 'problem' | 'message'> = {}): Finding {
  return { code, problem: true, message, ...extra };
}

export function note(code: NoteCode, message: string, extra: Omit<Finding, 'code' | 'problem' | 'message'> = {}): Finding {
  return { code, problem: false, message, ...extra };
}

/** [a, b] ranges of consecutive numbers, sorted. */
export function ranges(seqs: Iterable<number>): Array<[number, number]> {
  const sorted = [...seqs].sort((a, b) => a - b);
  const out: Array<[number, number]> = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last && s === last[1] + 1) last[1] = s;
    else if (!last || s > last[1]) out.push([s, s]);
  }
  return out;
}

export function rangeText(r: readonly [number, number]): string {
  return r[0] === r[1] ? `${r[0]}` : `${r[0]}-${r[1]}`;
}
