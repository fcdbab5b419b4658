/**
 * The gateway is invisible to clients: same status, same headers, same body bytes as calling Code Engine
 * directly; only hop-by-hop headers change, and the upstream learns who the client was and the transaction id.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import request from 'supertest';
import { startHarness, type Harness } from '../support/harness';

interface RawResponse {
  status: number;
  statusMessage: string;
  rawHeaders: string[];
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function call(
  base: string,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { method: init.method ?? 'GET', headers: init.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? '',
          rawHeaders: res.rawHeaders,
          headers: res.headers,
          body: Buffer.concat(chunks),
        }),
      );
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** Headers that legitimately differ between two responses of the same server. */
const VOLATILE = new Set(['date', 'connection', 'keep-alive', 'x-transaction-id', 'x-request-id', 'etag']);

function stableHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!VOLATILE.has((raw[i] as string).toLowerCase())) out.push(`${raw[i]}: ${raw[i + 1]}`);
  return out;
}

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

describe.each([
  ['GET', '/v2/function_runtimes', undefined],
  ['GET', '/v2/projects/00000000-0000-0000-0000-000000000000/apps', undefined],
  ['POST', '/v2/projects', '{"bad json'],
  ['GET', '/api/v1/namespaces/ns1/pods/missing', undefined],
  ['GET', '/apis', undefined],
  ['GET', '/api/v1/namespaces/ns1/pods/p1/log?bytes=300000', undefined],
  ['GET', '/v2/_download?bytes=1000000', undefined],
  ['HEAD', '/v2/_download?bytes=1000', undefined],
  ['DELETE', '/v2/projects/00000000-0000-0000-0000-000000000000', undefined],
] as const)('%s %s', (method, path, body) => {
  test('status, headers and body bytes equal a direct call', async () => {
    const headers = body ? { 'content-type': 'application/json' } : undefined;
    const direct = await call(h.upstream.url, path, { method, headers, body });
    const via = await call(h.url, path, { method, headers, body });
    expect(via.status).toBe(direct.status);
    expect(via.statusMessage).toBe(direct.statusMessage);
    expect(stableHeaders(via.rawHeaders)).toEqual(stableHeaders(direct.rawHeaders));
    if (!String(direct.body).includes('trace')) expect(via.body.equals(direct.body)).toBe(true);
    else expect(JSON.parse(String(via.body)).errors).toEqual(JSON.parse(String(direct.body)).errors);
  });
});

test('duplicate Set-Cookie and header case survive; hop-by-hop headers do not', async () => {
  const res = await call(h.url, '/v2/_echo');
  expect(res.status).toBe(200);
  const names = res.rawHeaders.filter((_, i) => i % 2 === 0);
  expect(names.filter((n) => n.toLowerCase() === 'set-cookie')).toHaveLength(2);
  expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  expect(names).toContain('X-Upstream-Header');
  expect(res.headers['x-upstream-header']).toBe('Mixed-Case-Value');
  expect(res.headers['x-transaction-id']).toMatch(/^[0-9a-f-]{36}$/);
});

test('the upstream gets its own Host, the forwarding headers, the transaction id, and no hop-by-hop headers', async () => {
  const res = await call(h.url, '/v2/_echo?x=1', {
    headers: {
      'x-request-id': 'req-abc.1',
      'x-forwarded-for': '203.0.113.9',
      connection: 'keep-alive, x-private-hop',
      'x-private-hop': 'drop me',
      'proxy-authorization': 'Basic c2VjcmV0',
      te: 'trailers',
      'X-Custom-Thing': 'kept',
    },
  });
  const echoed = JSON.parse(String(res.body)) as { method: string; url: string; headers: Record<string, string> };
  expect(echoed.url).toBe('/v2/_echo?x=1');
  expect(echoed.headers.host).toBe(new URL(h.upstream.url).host);
  expect(echoed.headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
  expect(echoed.headers['x-forwarded-proto']).toBe('http');
  expect(echoed.headers['x-correlation-id']).toBe('req-abc.1');
  expect(echoed.headers['x-request-id']).toBe('req-abc.1');
  expect(echoed.headers['x-custom-thing']).toBe('kept');
  expect(echoed.headers['x-private-hop']).toBeUndefined();
  expect(echoed.headers['proxy-authorization']).toBeUndefined();
  expect(echoed.headers.te).toBeUndefined();
  expect(res.headers['x-transaction-id']).toBe('req-abc.1');
});

test('transaction id: first well-formed of X-Transaction-Id, X-Correlation-Id, X-Request-Id, X-Global-Transaction-Id', async () => {
  const get = (headers: Record<string, string>) => request(h.url).get('/v2/function_runtimes').set(headers);
  expect((await get({ 'x-global-transaction-id': 'g1', 'x-request-id': 'r1' })).headers['x-transaction-id']).toBe('r1');
  expect((await get({ 'x-transaction-id': 'bad value!', 'x-correlation-id': 'c1' })).headers['x-transaction-id']).toBe('c1');
  expect((await get({ 'x-transaction-id': 'x'.repeat(129) })).headers['x-transaction-id']).toMatch(/^[0-9a-f-]{36}$/);
  expect((await get({ 'x-global-transaction-id': 'g:1.2-3' })).headers['x-transaction-id']).toBe('g:1.2-3');
});

test('a 200 KB JSON request body reaches the upstream byte for byte', async () => {
  const big = JSON.stringify({ name: 'big', data: 'x'.repeat(200_000) });
  const res = await call(h.url, '/v2/_upload', { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
  const answer = JSON.parse(String(res.body)) as { received_bytes: number };
  expect(answer.received_bytes).toBe(Buffer.byteLength(big));
});

test('keep-alive: one client connection carries many calls', async () => {
  const socket = connect(Number(new URL(h.url).port), '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
  for (let i = 0; i < 5; i++) socket.write('GET /v2/function_runtimes HTTP/1.1\r\nHost: x\r\n\r\n');
  const deadline = Date.now() + 3000;
  while ((text.match(/HTTP\/1\.1 200/g) ?? []).length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  socket.destroy();
  expect((text.match(/HTTP\/1\.1 200/g) ?? []).length).toBe(5);
});
