/**
 * What the HTTP sinks share: reading a bounded response body, turning an HTTP status or a network error into a
 * SendResult, and closing a keep-alive Agent. Reasons quote the server's own message (bounded) and never the
 * request: no header is ever echoed, and every reason goes through the sink's secret scrubber.
 */
import { STATUS_CODES } from 'node:http';
import type { Agent, Dispatcher } from 'undici';
import { parseRetryAfter } from '../backoff';
import type { SendResult } from './sink';

export type ResponseBody = Dispatcher.ResponseData['body'];
export type ResponseHeaders = Dispatcher.ResponseData['headers'];
export type Scrub = (text: string) => string;

/** Longest server message quoted in a reason. */
export const MAX_MESSAGE_CHARS = 300;
/** Error bodies are read up to this size (the message is at the start); the rest is discarded. */
export const ERROR_BODY_LIMIT = 64 * 1024;

/** Reads at most `limit` bytes of a body as UTF-8 and destroys the rest, so the connection is always freed. */
export async function readText(body: ResponseBody, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    const room = limit - size;
    chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
    size += Math.min(chunk.length, room);
    if (size >= limit) break; // leaving the loop destroys the stream
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/** Consumes a body we do not need (a 200) without failing the send if that goes wrong. */
export async function discard(body: ResponseBody): Promise<void> {
  try {
    await body.dump();
  } catch {
    body.destroy();
  }
}

/** A body we may not be able to read after all (abort mid-way): best effort, never throws. */
export async function readTextSafely(body: ResponseBody, limit = ERROR_BODY_LIMIT): Promise<string> {
  try {
    return await readText(body, limit);
  } catch {
    body.destroy();
    return '';
  }
}

function bounded(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > MAX_MESSAGE_CHARS ? `${flat.slice(0, MAX_MESSAGE_CHARS)}...` : flat;
}

/** The server's explanation in an error body: a JSON `error` / `message` / `errorMessage` field, else the text. */
export function serverMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      const o = parsed as Record<string, unknown>;
      const nested = typeof o.error === 'object' && o.error !== null ? (o.error as Record<string, unknown>).message : undefined;
      for (const value of [o.errorMessage, o.message, o.error, nested, o.reason]) {
        if (typeof value === 'string' && value.trim() !== '') return bounded(value);
      }
    }
  } catch {
    // not JSON: quote the text itself
  }
  return bounded(text);
}

export function statusText(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? 'Unknown Status'}`;
}

/** `<api> answered 401 Unauthorized: <server message>` */
export function statusReason(api: string, status: number, bodyText: string, scrub: Scrub): string {
  const message = serverMessage(bodyText);
  return scrub(`${api} answered ${statusText(status)}${message ? `: ${message}` : ''}`);
}

export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 408 || (status >= 500 && status <= 599);
}

/**
 * The outcome of a non-2xx answer: 413 too large; 408, 429 and every 5xx retried (Retry-After honoured);
 * every other status (4xx, an unexpected 1xx/3xx) refused for good.
 */
export function failureResult(api: string, status: number, headers: ResponseHeaders, bodyText: string, scrub: Scrub): SendResult {
  const reason = statusReason(api, status, bodyText, scrub);
  if (status === 413) return { kind: 'too-large', reason, status };
  if (isRetryableStatus(status)) {
    const retryAfterMs = parseRetryAfter(headers['retry-after']);
    return retryAfterMs === undefined ? { kind: 'retry', reason, status } : { kind: 'retry', reason, status, retryAfterMs };
  }
  return { kind: 'rejected', reason, status };
}

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  cause?: unknown;
}

/** Errors may come from another realm (node core under jest's vm), so they are recognised by shape, not instanceof. */
function asError(value: unknown): ErrorLike | undefined {
  return typeof value === 'object' && value !== null ? (value as ErrorLike) : undefined;
}

/** The message of anything thrown. */
export function errorMessage(err: unknown): string {
  const message = asError(err)?.message;
  return typeof message === 'string' ? message : String(err);
}

/** The most specific name of a failure: an errno / undici code, else the error's name (TimeoutError, AbortError). */
export function errorCode(err: unknown): string {
  for (let e = asError(err), depth = 0; e && depth < 3; e = asError(e.cause), depth++) {
    if (typeof e.code === 'string' && e.code !== '') return e.code;
  }
  const name = asError(err)?.name;
  return typeof name === 'string' && name !== '' ? name : 'Error';
}

/** Network errors, timeouts and aborts: always retried (the events are still in the spool). */
export function networkResult(api: string, err: unknown, scrub: Scrub): SendResult {
  return { kind: 'retry', reason: scrub(`${api} request failed (${errorCode(err)}): ${bounded(errorMessage(err))}`) };
}

/** Closes an Agent, letting a request in flight finish for `graceMs`, then destroying what is left. */
export async function closeAgent(agent: Agent, graceMs = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), graceMs);
    timer.unref();
  });
  const closed = agent.close().then(
    () => 'closed' as const,
    () => 'closed' as const,
  );
  const outcome = await Promise.race([closed, grace]);
  clearTimeout(timer);
  if (outcome === 'late') await agent.destroy();
}

export const identityScrub: Scrub = (text) => text;
