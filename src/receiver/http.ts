/** Small HTTP helpers shared by the receiver's APIs: replies, header access and redaction. */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** What a handler answers; the server writes it (and records the status). */
export interface Reply {
  status: number;
  body: string;
  headers?: OutgoingHttpHeaders;
}

export function jsonReply(status: number, value: unknown, headers: OutgoingHttpHeaders = {}): Reply {
  return { status, body: JSON.stringify(value), headers };
}

export function writeReply(res: ServerResponse, reply: Reply): void {
  res.writeHead(reply.status, {
    ...reply.headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(reply.body),
  });
  res.end(reply.body);
}

export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The media type of the request without parameters, lower case; '' when there is none. */
export function mediaType(req: IncomingMessage): string {
  return (headerValue(req, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'apikey', 'cookie']);
const SECRET_QUERY = new Set(['apikey', 'access_token', 'key']);
export const REDACTED = '[REDACTED]';

export function redactHeaders(headers: IncomingHttpHeaders): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = SECRET_HEADERS.has(name) ? REDACTED : value;
  return out;
}

export function redactedQuery(params: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of params) out[name] = SECRET_QUERY.has(name.toLowerCase()) ? REDACTED : value;
  return out;
}
