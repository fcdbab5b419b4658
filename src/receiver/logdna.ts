/**
 * The LogDNA (Mezmo) ingest API: `POST /logs/ingest?hostname=...&now=...` with basic auth (ingestion key as
 * user name) or an `apikey` header, a `{"lines":[...]}` body, 200 `{"status":"ok","batchID"}` or 207 with one
 * status per line.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { parseJsonBody, readBody, requireJson } from './body';
import { ReceiverError } from './errors';
import { headerValue, jsonReply, mediaType, type Reply } from './http';
import { sameSecret } from './iam';
import { HOUR_MS, isObject, parseEvent, partiallyRejected, truncateUtf8, type IngestContext } from './ingest';

export interface LogdnaContext extends IngestContext {
  /** The region's ingestion key; undefined when the region has none (every request is 401). */
  key: string | undefined;
}

interface Line {
  line: string;
  timestamp: number | undefined;
  fields: Record<string, unknown>;
}

interface LineStatus {
  status: number;
  error?: string;
}

const MAX_HOSTNAME = 256;
const MAX_META_BYTES = 32 * 1024;
const WINDOW_MS = 24 * HOUR_MS;
const STRING_FIELDS = ['app', 'level', 'env', 'file'] as const;
const QUERY_FIELDS = ['ip', 'mac', 'tags'] as const;

export function logdnaErrorBody(status: number, message: string): unknown {
  return { error: message, code: String(status), status: 'error' };
}

function presentedKeys(req: IncomingMessage): string[] {
  const keys: string[] = [];
  const basic = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(headerValue(req, 'authorization') ?? '');
  if (basic?.[1]) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    keys.push(colon < 0 ? decoded : decoded.slice(0, colon));
  }
  const header = headerValue(req, 'apikey');
  if (header) keys.push(header);
  return keys;
}

function authenticate(req: IncomingMessage, key: string | undefined): void {
  const presented = presentedKeys(req);
  if (presented.length === 0) throw new ReceiverError('ERR_UNAUTHORIZED', 'Missing ingestion key (basic auth user or apikey header).');
  if (key === undefined || !presented.some((p) => sameSecret(p, key))) {
    throw new ReceiverError('ERR_UNAUTHORIZED', 'Invalid ingestion key.');
  }
}

function badLine(index: number, problem: string): ReceiverError {
  return new ReceiverError('ERR_BAD_REQUEST', `lines[${index}]: ${problem}`);
}

function toLine(value: unknown, index: number): Line {
  if (!isObject(value)) throw badLine(index, 'must be an object');
  const { line, timestamp, meta } = value;
  if (typeof line !== 'string') throw badLine(index, '"line" must be a string');
  if (timestamp !== undefined && !(typeof timestamp === 'number' && Number.isFinite(timestamp))) {
    throw badLine(index, '"timestamp" must be a number of milliseconds');
  }
  const fields: Record<string, unknown> = {};
  for (const name of STRING_FIELDS) {
    const field = value[name];
    if (field === undefined) continue;
    if (typeof field !== 'string') throw badLine(index, `"${name}" must be a string`);
    fields[name] = field;
  }
  if (meta !== undefined) {
    if (!isObject(meta) && typeof meta !== 'string') throw badLine(index, '"meta" must be an object or a string');
    fields.meta = meta;
  }
  return { line, timestamp, fields };
}

function parseLines(body: Buffer): Line[] {
  const parsed = parseJsonBody(body);
  if (!isObject(parsed) || !Array.isArray(parsed.lines)) throw new ReceiverError('ERR_BAD_REQUEST', 'Body must be {"lines":[...]}.');
  return parsed.lines.map(toLine);
}

function referenceTime(url: URL): number {
  const now = url.searchParams.get('now');
  if (now === null || now === '') return Date.now();
  const ms = Number(now);
  if (!Number.isFinite(ms)) throw new ReceiverError('ERR_BAD_REQUEST', '"now" must be a number of milliseconds.');
  return ms;
}

function checkHostname(url: URL): string {
  const hostname = url.searchParams.get('hostname');
  if (!hostname) throw new ReceiverError('ERR_BAD_REQUEST', 'The hostname query parameter is required.');
  if (hostname.length > MAX_HOSTNAME) throw new ReceiverError('ERR_BAD_REQUEST', `hostname is longer than ${MAX_HOSTNAME} characters.`);
  return hostname;
}

/** Applies the line limit: 413 in reject mode, otherwise cuts the line (and marks it truncated). */
function limitLines(lines: Line[], ctx: LogdnaContext): void {
  const { maxLineBytes, lineLimitMode } = ctx.limits;
  lines.forEach((l, index) => {
    if (Buffer.byteLength(l.line, 'utf8') <= maxLineBytes) return;
    if (lineLimitMode === 'reject') {
      throw new ReceiverError('ERR_LINE_TOO_LARGE', `lines[${index}] is longer than ${maxLineBytes} bytes.`);
    }
    l.line = truncateUtf8(l.line, maxLineBytes);
    l.fields.truncated = true;
  });
}

function lineStatus(l: Line, index: number, now: number, ctx: LogdnaContext): LineStatus {
  const timestamp = l.timestamp ?? now;
  if (Math.abs(timestamp - now) > WINDOW_MS) return { status: 400, error: 'timestamp is more than 24 hours from now' };
  if (l.fields.meta !== undefined && Buffer.byteLength(JSON.stringify(l.fields.meta), 'utf8') > MAX_META_BYTES) {
    return { status: 400, error: `meta is larger than ${MAX_META_BYTES} bytes` };
  }
  if (ctx.partial && partiallyRejected(ctx.partial, index)) {
    return { status: ctx.partial.status, error: 'line rejected by the receiver (partial behaviour)' };
  }
  return { status: 200 };
}

export async function handleLogdna(req: IncomingMessage, url: URL, ctx: LogdnaContext): Promise<Reply> {
  if (req.method !== 'POST') throw new ReceiverError('ERR_METHOD_NOT_ALLOWED', 'Use POST for /logs/ingest.');
  authenticate(req, ctx.key);
  const hostname = checkHostname(url);
  const now = referenceTime(url);
  requireJson(mediaType(req));
  const lines = parseLines(await readBody(req, ctx.limits.maxBodyBytes, ctx.progress));
  limitLines(lines, ctx);
  const query: Record<string, unknown> = { hostname };
  for (const name of QUERY_FIELDS) {
    const value = url.searchParams.get(name);
    if (value) query[name] = value;
  }
  const statuses = lines.map((l, index) => lineStatus(l, index, now, ctx));
  const receivedAt = Date.now();
  lines.forEach((l, index) => {
    if (statuses[index]?.status !== 200) return;
    const meta = { ...query, timestamp: l.timestamp ?? now, ...l.fields };
    ctx.events.push({ region: ctx.region, api: 'logdna', event: parseEvent(l.line), raw: l.line, receivedAt, meta });
  });
  if (statuses.every((s) => s.status === 200)) return jsonReply(200, { status: 'ok', batchID: randomUUID() });
  return jsonReply(207, { status: statuses });
}
