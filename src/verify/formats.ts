/**
 * The shapes an auditor's copy of the trail comes in, told apart line by line (an input may even mix them):
 *  - the gateway's journal (and the stdout sink): one event per line, as the gateway wrote it;
 *  - an Activity Tracker / LogDNA export (`/v1/export`, `/v2/export`): JSON lines with the line as sent in `_line`
 *    and its parsed fields merged around it; the COS archive wraps each in `_source`;
 *  - IBM Cloud Logs query results: JSON lines (or a JSON array) of `{metadata, labels, user_data}` with the event
 *    re-serialised as the string `user_data`, or the stream items `{"result":{"results":[...]}}`;
 *  - the raw server-sent-event stream of Cloud Logs' `POST /v1/query` (`data: {...}` lines, `:` keep-alives).
 * Anything else (other applications' lines) is counted as foreign and otherwise ignored.
 */
import { linesOf } from './inputs';

export type SourceFormat = 'journal' | 'logdna' | 'cloud-logs' | 'cloud-logs-sse';

/** A string that may be one of our events, and where it was found. */
export interface Candidate {
  /** `file:line` */
  source: string;
  format: SourceFormat;
  /** The event's JSON text as the copy holds it. */
  text: string;
  /** LogDNA: the fields the service shows beside `_line` (its parse of the line). */
  view?: Record<string, unknown>;
}

export interface ParsedInput {
  candidates: Candidate[];
  /** Lines that hold nothing of ours (other applications, query metadata, blank lines not counted). */
  foreign: number;
  lines: number;
}

const SSE_FIELD = /^(data|event|id|retry):/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Finds the events in one parsed JSON value; false when it holds none. */
function classify(value: unknown, source: string, text: string | undefined, sse: boolean, out: Candidate[]): boolean {
  if (Array.isArray(value)) {
    let any = false;
    for (const item of value) any = classify(item, source, undefined, sse, out) || any;
    return any;
  }
  if (!isRecord(value)) return false;
  if (typeof value._line === 'string') {
    out.push({ source, format: 'logdna', text: value._line, view: value });
    return true;
  }
  if (isRecord(value._source) && typeof value._source._line === 'string') {
    out.push({ source, format: 'logdna', text: value._source._line, view: value._source });
    return true;
  }
  if (typeof value.user_data === 'string') {
    out.push({ source, format: sse ? 'cloud-logs-sse' : 'cloud-logs', text: value.user_data });
    return true;
  }
  if (isRecord(value.result) && Array.isArray(value.result.results)) return classify(value.result.results, source, undefined, sse, out);
  if (isRecord(value.auditChain) || (typeof value.action === 'string' && value.eventType === 'activity')) {
    out.push({ source, format: 'journal', text: text ?? JSON.stringify(value) });
    return true;
  }
  return false;
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

/** A JSON document (a pretty-printed array of results, say) rather than JSON lines is parsed whole up to this size. */
const MAX_DOCUMENT_BYTES = 256 * 1024 * 1024;

/** The candidates of one input. `name` labels sources. */
export function parseInput(name: string, bytes: Buffer): ParsedInput {
  const result: ParsedInput = { candidates: [], foreign: 0, lines: 0 };
  let firstLine: string | undefined;
  for (const line of linesOf(bytes)) {
    if (line.trim() !== '') {
      firstLine = line;
      break;
    }
  }
  if (firstLine === undefined) return result;
  if (SSE_FIELD.test(firstLine) || firstLine.startsWith(':')) {
    parseSse(name, linesOf(bytes), result);
    return result;
  }
  const trimmed = firstLine.trim();
  if ((trimmed === '[' || trimmed === '{' || !parseJson(firstLine).ok) && /^[[{]/.test(trimmed) && bytes.length <= MAX_DOCUMENT_BYTES) {
    const whole = parseJson(bytes.toString('utf8'));
    if (whole.ok) {
      result.lines = 1;
      if (!classify(whole.value, `${name}`, undefined, false, result.candidates)) result.foreign++;
      return result;
    }
  }
  for (const line of linesOf(bytes)) {
    result.lines++;
    if (line.trim() === '') continue;
    const parsed = parseJson(line);
    if (!parsed.ok || !classify(parsed.value, `${name}:${result.lines}`, line, false, result.candidates)) result.foreign++;
  }
  return result;
}

/** Server-sent events: `data:` lines joined until a blank line; comments (`:`) and other fields skipped. */
function parseSse(name: string, lines: Iterable<string>, result: ParsedInput): void {
  let data: string[] = [];
  let startLine = 0;
  const flush = (): void => {
    if (data.length === 0) return;
    const parsed = parseJson(data.join('\n'));
    // The stream's own items (query_id first, warnings) are no one's lines.
    const control = parsed.ok && isRecord(parsed.value) && ('query_id' in parsed.value || 'warning' in parsed.value);
    if (!control && (!parsed.ok || !classify(parsed.value, `${name}:${startLine}`, undefined, true, result.candidates))) result.foreign++;
    data = [];
  };
  for (const line of lines) {
    result.lines++;
    if (line === '') flush();
    else if (line.startsWith('data:')) {
      if (data.length === 0) startLine = result.lines;
      data.push(line.slice(line[5] === ' ' ? 6 : 5));
    }
  }
  flush();
}
