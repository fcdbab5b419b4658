/**
 * Malformed and hostile HTTP requests for the fuzz test, from a seeded generator (the same seed gives the same
 * requests, so a failure can be replayed). Every request carries its own X-Transaction-Id, except the ones
 * whose head is broken on purpose (the gateway cannot read their headers, so it names them itself).
 */

/** mulberry32: small, fast, seedable. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type FuzzKind = 'valid' | 'path' | 'method' | 'header' | 'body' | 'smuggle' | 'truncated';

export interface FuzzRequest {
  kind: FuzzKind;
  transactionId: string;
  bytes: Buffer;
  /** The client stops sending before the request is complete and closes: no answer can be expected. */
  truncated: boolean;
  method: string;
}

const PATHS = [
  '/v2/projects',
  '/v2/projects/{p}',
  '/v2/projects/{p}/apps',
  '/v2/projects/{p}/apps/{n}',
  '/v2/projects/{p}/apps/{n}/revisions/{n}',
  '/v2/projects/{p}/secrets/{n}',
  '/v2/projects/{p}/config_maps/{n}',
  '/v2/projects/{p}/jobs',
  '/v2/projects/{p}/job_runs/{n}',
  '/v2/projects/{p}/builds/{n}',
  '/v2/projects/{p}/build_runs',
  '/v2/projects/{p}/bindings/{n}',
  '/v2/projects/{p}/domain_mappings/{n}',
  '/v2/function_runtimes',
  '/api/v1/project/{p}/config',
  '/api/v1/namespaces/{ns}/pods',
  '/api/v1/namespaces/{ns}/pods/{n}/log',
  '/api/v1/namespaces/{ns}/secrets/{n}',
  '/apis/serving.knative.dev/v1/namespaces/{ns}/services/{n}',
  '/apis/sources.knative.dev/v1/namespaces/{ns}/pingsources',
  '/apis/example.com/v1/namespaces/{ns}/widgets/{n}',
  '/regions/us-south/v2/projects/{p}/apps',
  '/version',
  '/',
];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
const ODD_METHODS = ['get', 'Get', 'FOO', 'G ET', '', 'GET\x00', 'PROPFIND', 'TRACE', 'CONNECT', 'M'.repeat(40), 'DELETE\t', '\u00e9GET'];
const SEGMENT_NOISE = [
  '..',
  '.',
  '',
  '%2e%2e',
  '%2E%2e',
  '%2F',
  '%2f',
  '%5C',
  '%00',
  '%0d%0a',
  ';x=1',
  '#f',
  '\\',
  '%zz',
  '%',
  '%C3%A9',
  'a%3Ab',
  '~user',
  '@host',
  'x'.repeat(300),
];
const HEADER_NOISE = [
  'X-HTTP-Method-Override: DELETE',
  'X-HTTP-Method: PUT',
  'X-Original-URL: /v2/projects/p/secrets/s',
  'X_Rewrite_URL: /v2/projects/p/secrets',
  'X-Forwarded-Prefix: /v2/projects/p/secrets',
  'Host: other.example',
  'X-Forwarded-For: 203.0.113.5, 10.0.0.1',
  'X-Forwarded-Host: evil.example',
  'Transfer-Encoding: gzip',
  'Expect: 100-continue',
  'Connection: keep-alive, X-Foo',
  'X-Foo: dropped',
  'Cookie: session=CANARY-fuzz-cookie',
  'Authorization: Bearer not.a.jwt',
  'Authorization: Basic dXNlcjpwYXNz',
  'X-Transaction-Id: <script>',
  'Content-Type: text/plain',
  'Upgrade: h2c',
];
const BROKEN_HEADERS = [
  'X-Bad : space',
  'X-Fold: a\r\n folded',
  'X-Nul: a\x00b',
  'X-CR: a\rb',
  'Bad Name: v',
  ': empty-name',
  `X-Huge: ${'h'.repeat(40_000)}`,
];

export function generate(seed: number, count: number): FuzzRequest[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const ident = (): string => {
    const chars = 'abcdefghijklmnopqrstuvwxyz0123456789-';
    let s = '';
    for (let i = 1 + Math.floor(r() * 12); i > 0; i--) s += chars[Math.floor(r() * chars.length)];
    return s;
  };
  const path = (): string =>
    pick(PATHS)
      .replace(/\{p\}/g, () => ident())
      .replace(/\{n\}/g, () => ident())
      .replace(/\{ns\}/g, () => ident());
  const mangle = (p: string): string => {
    const segs = p.split('/');
    for (let i = 1 + Math.floor(r() * 3); i > 0; i--) segs.splice(1 + Math.floor(r() * segs.length), 0, pick(SEGMENT_NOISE));
    let out = segs.join('/');
    if (r() < 0.2) out = out.replace(/\//g, () => (r() < 0.2 ? '//' : '/'));
    if (r() < 0.1) out = `http://evil.example${out}`;
    if (r() < 0.1) out += `?q=${pick(SEGMENT_NOISE)}&watch=${r() < 0.5}`;
    return out;
  };
  const jsonBody = (): string => {
    const choices = [
      () =>
        JSON.stringify({
          name: ident(),
          image_reference: 'icr.io/x',
          run_env_variables: [{ type: 'literal', name: 'API_KEY', value: 'CANARY-fuzz-env' }],
        }),
      () => JSON.stringify({ name: ident(), format: 'generic', data: { password: 'CANARY-fuzz-secret' } }),
      () => JSON.stringify([{ op: 'replace', path: '/data/token', value: 'CANARY-fuzz-patch' }]),
      () => '{"name": "unterminated',
      () => 'not json at all',
      () => '',
    ];
    return pick(choices)();
  };
  const out: FuzzRequest[] = [];
  for (let i = 0; i < count; i++) {
    const transactionId = `fz-${seed}-${i}`;
    const roll = r();
    const kind: FuzzKind =
      roll < 0.35
        ? 'valid'
        : roll < 0.55
          ? 'path'
          : roll < 0.62
            ? 'method'
            : roll < 0.75
              ? 'header'
              : roll < 0.85
                ? 'body'
                : roll < 0.95
                  ? 'smuggle'
                  : 'truncated';
    let method = pick(METHODS);
    let target = path();
    const headers = ['Host: gw.example', `X-Transaction-Id: ${transactionId}`];
    let body = '';
    let chunked: string | undefined;
    let truncated = false;
    switch (kind) {
      case 'valid':
        if (method === 'POST' || method === 'PUT' || method === 'PATCH') body = jsonBody();
        if (r() < 0.3) headers.push(pick(HEADER_NOISE));
        break;
      case 'path':
        target = mangle(target);
        break;
      case 'method':
        method = pick(ODD_METHODS);
        break;
      case 'header':
        for (let k = Math.floor(r() * 4); k >= 0; k--) headers.push(r() < 0.4 ? pick(BROKEN_HEADERS) : pick(HEADER_NOISE));
        if (r() < 0.2) for (let k = 0; k < 150; k++) headers.push(`X-Many-${k}: ${k}`);
        break;
      case 'body':
        method = pick(['POST', 'PUT', 'PATCH']);
        body = jsonBody();
        if (r() < 0.3) body = body + 'x'.repeat(Math.floor(r() * 100_000));
        break;
      case 'smuggle': {
        method = 'POST';
        body = jsonBody();
        const variant = Math.floor(r() * 6);
        if (variant === 0) headers.push(`Content-Length: ${body.length}`, 'Transfer-Encoding: chunked');
        else if (variant === 1) headers.push(`Content-Length: ${body.length}`, `Content-Length: ${body.length + 1}`);
        else if (variant === 2) headers.push('Transfer-Encoding: chunked, identity');
        else if (variant === 3) headers.push('Transfer-Encoding: xchunked');
        else if (variant === 4) chunked = `${body.length.toString(16)}x\r\n${body}\r\n0\r\n\r\n`;
        else chunked = `${body.length.toString(16)};ext=1\r\n${body}\r\n0\r\nX-Trailer: t\r\n\r\n`;
        if (variant <= 3) {
          const head = `${method} ${target} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`;
          out.push({ kind, transactionId, bytes: Buffer.from(head + body, 'latin1'), truncated: false, method });
          continue;
        }
        break;
      }
      case 'truncated':
        method = 'POST';
        body = jsonBody() || '{}';
        truncated = true;
        break;
    }
    let bytes: Buffer;
    if (chunked !== undefined) {
      headers.push('Transfer-Encoding: chunked');
      bytes = Buffer.from(`${method} ${target} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n${chunked}`, 'latin1');
    } else {
      if (body || method === 'POST' || method === 'PUT' || method === 'PATCH')
        headers.push(`Content-Length: ${Buffer.byteLength(body) + (truncated ? 50 : 0)}`);
      bytes = Buffer.from(`${method} ${target} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n${body}`, 'latin1');
    }
    out.push({ kind, transactionId, bytes, truncated, method });
  }
  return out;
}
