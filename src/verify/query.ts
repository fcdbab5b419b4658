/**
 * `ce-audit query`: the events of a trail (any input format, copies counted once by event id), filtered as
 * auditors ask: by project, action, outcome, initiator, transaction and time.
 */
import { CHECKPOINT_ACTION } from '../integrity/checkpoint-event';
import { parseInput } from './formats';
import { expandInputs, readInput } from './inputs';

export type AuditRecord = Record<string, unknown>;

export interface QueryFilter {
  project?: string;
  /** Glob: `*` any run of characters, `?` one. */
  action?: string;
  outcome?: 'success' | 'failure' | 'unknown';
  initiator?: string;
  transaction?: string;
  sinceMs?: number;
  untilMs?: number;
}

function field(event: AuditRecord, path: string): unknown {
  let at: unknown = event;
  for (const part of path.split('.')) {
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return at;
}

export function text(event: AuditRecord, path: string): string {
  const v = field(event, path);
  return v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v);
}

/** Activity Tracker's `2026-11-25T18:34:24.12+0000` (or any ISO time) as epoch milliseconds. */
export function eventTimeMs(event: AuditRecord): number {
  return Date.parse(text(event, 'eventTime').replace(/\+0000$/, 'Z'));
}

/** An absolute time (ISO 8601, Activity Tracker's format) or one relative to now: 30m, 24h, 7d. */
export function parseTime(value: string, now = Date.now()): number | undefined {
  const rel = /^(\d+)(s|m|h|d)$/.exec(value);
  if (rel) return now - Number(rel[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'h' | 'd'];
  const ms = Date.parse(value.replace(/\+0000$/, 'Z'));
  return Number.isNaN(ms) ? undefined : ms;
}

export function globRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
}

/** Whether an event passes the filter. Checkpoints only when the action pattern asks for them. */
export function matches(event: AuditRecord, f: QueryFilter, action: RegExp | undefined): boolean {
  const act = text(event, 'action');
  if (act === CHECKPOINT_ACTION && !(action && action.test(act))) return false;
  if (action && !action.test(act)) return false;
  if (f.outcome && text(event, 'outcome') !== f.outcome) return false;
  if (f.project) {
    const target = text(event, 'target.id');
    if (target !== f.project && !target.includes(`:${f.project}::`)) return false;
  }
  if (f.initiator && text(event, 'initiator.id') !== f.initiator && text(event, 'initiator.name') !== f.initiator) return false;
  if (f.transaction && text(event, 'transactionID') !== f.transaction && text(event, 'correlationId') !== f.transaction) return false;
  if (f.sinceMs !== undefined || f.untilMs !== undefined) {
    const t = eventTimeMs(event);
    if (Number.isNaN(t) || (f.sinceMs !== undefined && t < f.sinceMs) || (f.untilMs !== undefined && t > f.untilMs)) return false;
  }
  return true;
}

/** Parses one candidate's text into an audit event (ours or anyone's Activity Tracker event), or undefined. */
export function asAuditRecord(candidateText: string): AuditRecord | undefined {
  try {
    const v: unknown = JSON.parse(candidateText);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    const e = v as AuditRecord;
    return typeof e.action === 'string' && typeof e.eventTime === 'string' ? e : undefined;
  } catch {
    return undefined;
  }
}

/** Every event of the inputs, once each (by id), sorted by time. */
export async function readEvents(paths: readonly string[], stdin?: NodeJS.ReadableStream): Promise<AuditRecord[]> {
  const seen = new Set<string>();
  const events: AuditRecord[] = [];
  for (const p of await expandInputs(paths)) {
    for (const c of parseInput(p, await readInput(p, stdin)).candidates) {
      const e = asAuditRecord(c.text);
      if (!e) continue;
      const key = typeof e.id === 'string' ? e.id : c.text;
      if (seen.has(key)) continue;
      seen.add(key);
      events.push(e);
    }
  }
  return events.sort((a, b) => eventTimeMs(a) - eventTimeMs(b) || text(a, 'auditChain.seq').localeCompare(text(b, 'auditChain.seq')));
}

/** The rows of the readable table. */
export const COLUMNS: ReadonlyArray<{ title: string; width: number; value: (e: AuditRecord) => string }> = [
  { title: 'TIME (UTC)', width: 22, value: (e) => text(e, 'eventTime').replace(/\+0000$/, '') },
  { title: 'ACTION', width: 34, value: (e) => text(e, 'action') },
  { title: 'OUTCOME', width: 7, value: (e) => text(e, 'outcome') },
  { title: 'CODE', width: 4, value: (e) => text(e, 'reason.reasonCode') },
  {
    title: 'TARGET',
    width: 24,
    value: (e) => (text(e, 'action') === CHECKPOINT_ACTION ? `size ${text(e, 'auditCheckpoint.size')}` : text(e, 'target.name')),
  },
  { title: 'PROJECT', width: 36, value: (e) => /:([^:]*)::$/.exec(text(e, 'target.id'))?.[1] ?? '' },
  { title: 'INITIATOR', width: 28, value: (e) => text(e, 'initiator.name') || text(e, 'initiator.id') },
  { title: 'TRANSACTION', width: 36, value: (e) => text(e, 'transactionID') },
];

function cell(value: string, width: number): string {
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return clean.length > width ? `${clean.slice(0, width - 1)}…` : clean.padEnd(width);
}

export function tableHeader(): string {
  return COLUMNS.map((c) => cell(c.title, c.width))
    .join('  ')
    .trimEnd();
}

export function tableRow(e: AuditRecord): string {
  const row = COLUMNS.map((c) => cell(c.value(e), c.width))
    .join('  ')
    .trimEnd();
  const why = text(e, 'reason.reasonForFailure');
  return why && text(e, 'outcome') !== 'success' ? `${row}\n${' '.repeat(24)}└ ${cell(why, 160).trimEnd()}` : row;
}
