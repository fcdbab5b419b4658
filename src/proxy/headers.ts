/**
 * Header rewriting between client and upstream. Header names and values pass unchanged (order and case too,
 * from the raw header lists), except the hop-by-hop headers of RFC 9110 section 7.6.1 and the few the gateway
 * owns: Host (the upstream's), X-Forwarded-For/-Proto (appended), X-Correlation-Id (the transaction id).
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

// Owned by the gateway on the way up. `expect: 100-continue` is answered by the listener itself.
const REPLACED_UPSTREAM = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-correlation-id', 'expect', 'content-length']);

/** Header names a Connection header lists (hop-by-hop too, RFC 9110 7.6.1), lower-cased. */
export function connectionListed(rawHeaders: readonly string[]): Set<string> | undefined {
  let listed: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] as string).toLowerCase() !== 'connection') continue;
    for (const token of (rawHeaders[i + 1] as string).split(',')) {
      const name = token.trim().toLowerCase();
      if (name && name !== 'close' && name !== 'keep-alive' && name !== 'upgrade') (listed ??= new Set()).add(name);
    }
  }
  return listed;
}

export interface UpstreamHeaderInput {
  rawHeaders: readonly string[];
  host: string;
  transactionId: string;
  clientAddress: string;
  proto: 'http' | 'https';
  /** Forwarded only when the request has a body with a known length. */
  contentLength: string | undefined;
}

/** Flat [name, value, name, value, ...] list for the upstream request. */
export function upstreamRequestHeaders(input: UpstreamHeaderInput): string[] {
  const raw = input.rawHeaders;
  const listed = connectionListed(raw);
  const out: string[] = ['host', input.host];
  let forwardedFor = '';
  let forwardedProto = '';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    const value = raw[i + 1] as string;
    if (lower === 'x-forwarded-for') forwardedFor = forwardedFor ? `${forwardedFor}, ${value}` : value;
    else if (lower === 'x-forwarded-proto') forwardedProto = forwardedProto ? `${forwardedProto}, ${value}` : value;
    if (HOP_BY_HOP.has(lower) || REPLACED_UPSTREAM.has(lower) || listed?.has(lower)) continue;
    out.push(name, value);
  }
  if (input.contentLength !== undefined) out.push('content-length', input.contentLength);
  out.push('x-forwarded-for', forwardedFor ? `${forwardedFor}, ${input.clientAddress}` : input.clientAddress);
  out.push('x-forwarded-proto', forwardedProto ? `${forwardedProto}, ${input.proto}` : input.proto);
  out.push('x-correlation-id', input.transactionId);
  return out;
}

/** Flat list for the client's response: upstream headers minus hop-by-hop, plus X-Transaction-Id. */
export function clientResponseHeaders(raw: ReadonlyArray<Buffer | string>, transactionId: string): string[] {
  const out: string[] = [];
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    const value = raw[i + 1]!.toString('latin1');
    if (lower === 'connection') {
      for (const token of value.split(',')) (listed ??= new Set()).add(token.trim().toLowerCase());
      continue;
    }
    if (HOP_BY_HOP.has(lower) || lower === 'x-transaction-id') continue;
    out.push(name, value);
  }
  if (listed) {
    for (let i = out.length - 2; i >= 0; i -= 2) if (listed.has((out[i] as string).toLowerCase())) out.splice(i, 2);
  }
  out.push('X-Transaction-Id', transactionId);
  return out;
}

/** Convert undici's parsed header object to a flat list (when raw headers are not available). */
export function flattenHeaders(headers: Record<string, string | string[] | undefined>): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  return out;
}
