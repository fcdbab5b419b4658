/** `ce-audit verify`: reads every input, gathers the trail, verifies each log, and says what it found. */
import type { TrustedKey } from '../integrity/note';
import { note, problem, type Finding } from './findings';
import { parseInput, type SourceFormat } from './formats';
import { expandInputs, readInput } from './inputs';
import { addCandidate, emptyTrail, type Trail } from './trail';
import { verifyLog, type LogReport, type OutsideAnchor } from './verify-log';

export interface InputSummary {
  path: string;
  formats: SourceFormat[];
  lines: number;
  /** Lines that may hold an event (before deduplication and the check of their integrity block). */
  candidates: number;
  foreign: number;
}

export interface VerifyResult {
  inputs: InputSummary[];
  logs: LogReport[];
  /** Findings about the trail as a whole. */
  findings: Finding[];
  problems: number;
  trail: Trail;
}

export interface VerifyInput {
  paths: readonly string[];
  keys: readonly TrustedKey[];
  allowUnsigned: boolean;
  stdin?: NodeJS.ReadableStream;
}

/** Reads and parses every input into one trail. */
export async function readTrail(
  paths: readonly string[],
  stdin?: NodeJS.ReadableStream,
): Promise<{ trail: Trail; inputs: InputSummary[] }> {
  const trail = emptyTrail();
  const inputs: InputSummary[] = [];
  for (const p of await expandInputs(paths)) {
    const parsed = parseInput(p === '-' ? 'stdin' : p, await readInput(p, stdin));
    for (const c of parsed.candidates) addCandidate(trail, c);
    inputs.push({
      path: p === '-' ? '(standard input)' : p,
      formats: [...new Set(parsed.candidates.map((c) => c.format))],
      lines: parsed.lines,
      candidates: parsed.candidates.length,
      foreign: parsed.foreign,
    });
  }
  return { trail, inputs };
}

/** Verifies every log of a trail; a log another one names as its predecessor is checked against that claim too. */
export function verifyTrail(trail: Trail, keys: readonly TrustedKey[], allowUnsigned: boolean): { logs: LogReport[]; findings: Finding[] } {
  const options = { keys, allowUnsigned };
  const findings: Finding[] = [];
  const reports = new Map<string, LogReport>();
  for (const [log, bySeq] of trail.logs) reports.set(log, verifyLog(log, bySeq, options));
  const outside = new Map<string, OutsideAnchor[]>();
  for (const r of reports.values()) {
    const p = r.predecessor;
    if (!p?.vouched) continue;
    if (!reports.has(p.log)) {
      findings.push(note('NEW_LOG', `log ${r.log} follows ${p.log}, which is not in the input`));
      continue;
    }
    outside.set(p.log, [...(outside.get(p.log) ?? []), { size: p.size, hash: p.hash, by: `log ${r.log}, which follows it` }]);
  }
  for (const [log, anchors] of outside) reports.set(log, verifyLog(log, trail.logs.get(log) ?? new Map(), options, anchors));
  if (trail.malformed.length > 0) {
    for (const m of trail.malformed.slice(0, 20)) findings.push(problem('MALFORMED', m.problem, { sources: [m.source] }));
    if (trail.malformed.length > 20) findings.push(problem('MALFORMED', `${trail.malformed.length - 20} more malformed integrity blocks`));
  }
  if (reports.size === 0)
    findings.push(problem('NO_EVENTS', 'no event of ce-audit-gateway (with an auditChain block) was found in the input'));
  if (trail.duplicates > 0) findings.push(note('DUPLICATES', `${trail.duplicates} identical copies of events were found and counted once`));
  if (trail.unchained > 0) findings.push(note('UNCHAINED', `${trail.unchained} event(s) without an integrity block were not verified`));
  const logs = [...reports.values()].sort((a, b) => a.log.localeCompare(b.log));
  return { logs, findings };
}

export async function verify(input: VerifyInput): Promise<VerifyResult> {
  const { trail, inputs } = await readTrail(input.paths, input.stdin);
  const { logs, findings } = verifyTrail(trail, input.keys, input.allowUnsigned);
  const foreign = inputs.reduce((n, i) => n + i.foreign, 0) + trail.unparsable;
  if (foreign > 0) findings.push(note('FOREIGN', `${foreign} line(s) of other applications were ignored`));
  const problems = findings.filter((f) => f.problem).length + logs.reduce((n, l) => n + l.findings.filter((f) => f.problem).length, 0);
  return { inputs, logs, findings, problems, trail };
}
