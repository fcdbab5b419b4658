/**
 * The IBM Cloud Logs ingest API: `POST /logs/v1/singles` with an IAM bearer token and a JSON array of log
 * entries. Entries outside the time window (older than 24 h, more than 4 h ahead) are dropped with 200 and
 * the count in the body, as the real API does.
 */
import type { IncomingMessage } from 'node:http';
import { parseJsonBody, readBody, requireJson } from './body';
import { ReceiverError } from './errors';
import { headerValue, jsonReply, mediaType, type Reply } from './http';
import type { TokenStore } from './iam';
import { HOUR_MS, isObject, parseEvent, partiallyRejected, type IngestContext } from './ingest';

export interface CloudLogsContext extends IngestContext {
  tokens: TokenStore;
}

interface Entry {
  text: string;
  event: unknown;
  timestamp: number;
  meta: Record<string, unknown>;
}

const MAX_AGE_MS = 24 * HOUR_MS;
const MAX_AHEAD_MS = 4 * HOUR_MS;
const OPTIONAL_STRINGS = ['computerName', 'category', 'className', 'methodName', 'threadId', 'hostName'] as const;

export function cloudLogsErrorBody(status: number, message: string): unknown {
  return { error: message, status };
}

function authenticate(req: IncomingMessage, tokens: TokenStore): void {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(headerValue(req, 'authorization') ?? '');
  if (!bearer?.[1]) throw new ReceiverError('ERR_UNAUTHORIZED', 'Missing bearer token.');
  if (!tokens.valid(bearer[1], Date.now())) throw new ReceiverError('ERR_UNAUTHORIZED', 'Invalid or expired token.');
}

function badEntry(index: number, problem: string): ReceiverError {
  return new ReceiverError('ERR_BAD_REQUEST', `[${index}]: ${problem}`);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value !== '';
}

function toEntry(value: unknown, index: number, maxLogBytes: number): Entry {
  if (!isObject(value)) throw badEntry(index, 'must be an object');
  const { applicationName, subsystemName, severity, timestamp, text } = value;
  if (!nonEmptyString(applicationName)) throw badEntry(index, '"applicationName" must be a non-empty string');
  if (!nonEmptyString(subsystemName)) throw badEntry(index, '"subsystemName" must be a non-empty string');
  if (!(typeof severity === 'number' && Number.isInteger(severity) && severity >= 1 && severity <= 6)) {
    throw badEntry(index, '"severity" must be an integer from 1 (debug) to 6 (critical)');
  }
  if (!(typeof timestamp === 'number' && Number.isFinite(timestamp))) throw badEntry(index, '"timestamp" must be a number of milliseconds');
  if (typeof text !== 'string' && !isObject(text)) throw badEntry(index, '"text" must be a string or a JSON object');
  const meta: Record<string, unknown> = { applicationName, subsystemName, severity, timestamp };
  for (const name of OPTIONAL_STRINGS) {
    const field = value[name];
    if (field === undefined) continue;
    if (typeof field !== 'string') throw badEntry(index, `"${name}" must be a string`);
    meta[name] = field;
  }
  const raw = typeof text === 'string' ? text : JSON.stringify(text);
  if (Buffer.byteLength(raw, 'utf8') > maxLogBytes) {
    throw new ReceiverError('ERR_LINE_TOO_LARGE', `[${index}]: text is larger than ${maxLogBytes} bytes.`);
  }
  return { text: raw, event: typeof text === 'string' ? parseEvent(text) : text, timestamp, meta };
}

function parseEntries(body: Buffer, maxLogBytes: number): Entry[] {
  const parsed = parseJsonBody(body);
  if (!Array.isArray(parsed)) throw new ReceiverError('ERR_BAD_REQUEST', 'Body must be a JSON array of log entries.');
  return parsed.map((value: unknown, index) => toEntry(value, index, maxLogBytes));
}

export async function handleCloudLogs(req: IncomingMessage, ctx: CloudLogsContext): Promise<Reply> {
  if (req.method !== 'POST') throw new ReceiverError('ERR_METHOD_NOT_ALLOWED', 'Use POST for /logs/v1/singles.');
  authenticate(req, ctx.tokens);
  requireJson(mediaType(req));
  const entries = parseEntries(await readBody(req, ctx.limits.maxBodyBytes, ctx.progress), ctx.limits.cloudLogsMaxLogBytes);
  const now = Date.now();
  let outOfWindow = 0;
  let rejected = 0;
  entries.forEach((entry, index) => {
    if (entry.timestamp < now - MAX_AGE_MS || entry.timestamp > now + MAX_AHEAD_MS) outOfWindow += 1;
    else if (partiallyRejected(ctx.partial, index)) rejected += 1;
    else ctx.events.push({ region: ctx.region, api: 'cloud-logs', event: entry.event, raw: entry.text, receivedAt: now, meta: entry.meta });
  });
  if (outOfWindow + rejected === 0) return jsonReply(200, {});
  const reasons: string[] = [];
  if (outOfWindow > 0) reasons.push(`${outOfWindow} logs outside the accepted time window (older than 24 h or more than 4 h ahead)`);
  if (rejected > 0) reasons.push(`${rejected} logs rejected by the receiver (partial behaviour)`);
  return jsonReply(200, { dropped: outOfWindow + rejected, reason: reasons.join('; ') });
}
