/**
 * Attempts to make a call go unaudited or be audited as something else. For each: either the gateway refused
 * it (a 4xx, nothing forwarded, a failure event), or the upstream received exactly the method and path the
 * event names, and the event's action is the catalog's action for what the upstream received. Through every
 * front end: the standalone gateway, and the audit middleware mounted at the root of an Express app (attached
 * to its server) in front of http-proxy-middleware and in front of createCodeEngineProxy.
 */
import { parseRequestTarget } from '../../src/http/request-target';
import { loadCatalog } from '../../src/routing/catalog';
import type { AuditEvent } from '../../src/types';
import { FRONT_ENDS, startFrontEnd } from '../support/express-harness';
import type { RecordedRequest } from '../support/fake-code-engine';
import type { AuditHarness } from '../support/harness';
import { rawRequest } from '../support/raw-http';

const catalog = loadCatalog('current');

interface Attempt {
  name: string;
  method?: string;
  target: string;
  headers?: string[];
  /** Expected: refused by the gateway (4xx/5xx it produced), or forwarded as this method and path. */
  expect: { refused: number } | { forwarded: string };
}

const ATTEMPTS: Attempt[] = [
  { name: 'duplicate slashes', target: '//v2//projects///p1//apps/', expect: { forwarded: 'GET /v2/projects/p1/apps' } },
  { name: 'dot segment', target: '/v2/projects/p1/apps/./a1', expect: { forwarded: 'GET /v2/projects/p1/apps/a1' } },
  {
    name: 'dot-dot from secrets to apps',
    target: '/v2/projects/p1/secrets/../apps/a1',
    expect: { forwarded: 'GET /v2/projects/p1/apps/a1' },
  },
  { name: 'encoded dot-dot', target: '/v2/projects/p1/apps/%2e%2e/secrets/s1', expect: { forwarded: 'GET /v2/projects/p1/secrets/s1' } },
  {
    name: 'mixed-case encoded dot-dot',
    target: '/v2/projects/p1/apps/%2E%2e/secrets',
    expect: { forwarded: 'GET /v2/projects/p1/secrets' },
  },
  { name: 'encoded unreserved letters', target: '/v2/projects/p1/%61%70%70s/a1', expect: { forwarded: 'GET /v2/projects/p1/apps/a1' } },
  { name: 'trailing slash', target: '/v2/projects/p1/secrets/s1/', expect: { forwarded: 'GET /v2/projects/p1/secrets/s1' } },
  { name: 'trailing dot', target: '/v2/projects/p1/apps/.', expect: { forwarded: 'GET /v2/projects/p1/apps' } },
  {
    name: 'lower-case escape of a reserved byte kept, upper-cased',
    target: '/v2/projects/p1/apps/a%3ab',
    expect: { forwarded: 'GET /v2/projects/p1/apps/a%3Ab' },
  },
  { name: 'encoded slash', target: '/v2/projects/p1/apps%2Fa1', expect: { refused: 400 } },
  { name: 'encoded lower-case slash', target: '/v2/projects/p1/apps%2fa1', expect: { refused: 400 } },
  { name: 'encoded backslash', target: '/v2/projects/p1/apps%5Ca1', expect: { refused: 400 } },
  { name: 'raw backslash', target: '/v2/projects\\p1/apps', expect: { refused: 400 } },
  { name: 'encoded NUL', target: '/v2/projects/p1/apps/a%00b', expect: { refused: 400 } },
  { name: 'encoded CR LF', target: '/v2/projects/p1/apps/a%0d%0aX-Injected:%201', expect: { refused: 400 } },
  { name: 'malformed escape', target: '/v2/projects/p1/apps/a%zz', expect: { refused: 400 } },
  { name: 'matrix parameter', target: '/v2/projects/p1/apps;jsessionid=x/a1', expect: { refused: 400 } },
  { name: 'climb above the root', target: '/../../etc/passwd', expect: { refused: 400 } },
  { name: 'climb above the root from v2', target: '/v2/../../v2/projects', expect: { refused: 400 } },
  { name: 'overlong path', target: `/v2/projects/p1/apps/${'a'.repeat(9000)}`, expect: { refused: 400 } },
  { name: 'absolute-form target', target: 'http://api.us-south.codeengine.cloud.ibm.com/v2/projects', expect: { refused: 400 } },
  { name: 'asterisk-form target', method: 'OPTIONS', target: '*', expect: { refused: 400 } },
  { name: 'fragment', target: '/v2/projects/p1/apps/a1#secrets', expect: { refused: 400 } },
  {
    name: 'method override header',
    method: 'POST',
    target: '/v2/projects/p1/apps',
    headers: ['X-HTTP-Method-Override: DELETE', 'Content-Length: 0'],
    expect: { refused: 400 },
  },
  {
    name: 'X-HTTP-Method header',
    method: 'POST',
    target: '/v2/projects/p1/apps',
    headers: ['X-HTTP-Method: DELETE', 'Content-Length: 0'],
    expect: { refused: 400 },
  },
  {
    name: 'X-Method-Override header',
    method: 'GET',
    target: '/v2/projects/p1/apps/a1',
    headers: ['X-Method-Override: DELETE'],
    expect: { refused: 400 },
  },
  // Headers that make a frontend behind the gateway run another path or method than the one sent (and audited).
  ...(
    [
      ['X-Original-URL', '/v2/projects/p1/secrets/s1'],
      ['X-Rewrite-URL', '/v2/projects/p1/secrets/s1'],
      ['X-Original-URI', '/v2/projects/p1/secrets/s1'],
      ['X-Forwarded-URI', '/v2/projects/p1/secrets/s1'],
      ['X-Forwarded-Path', '/v2/projects/p1/secrets/s1'],
      ['X-Forwarded-Prefix', '/v2/projects/p1/secrets'],
      ['X-Envoy-Original-Path', '/v2/projects/p1/secrets/s1'],
      ['X-Script-Name', '/v2/projects/p1/secrets'],
      ['X-Original-Method', 'DELETE'],
      ['X-Forwarded-Method', 'DELETE'],
      // CGI and PHP read X_Original_URL as X-Original-URL; nginx may pass underscores on.
      ['X_Original_URL', '/v2/projects/p1/secrets/s1'],
      ['x-http-method_override', 'DELETE'],
    ] as const
  ).map(([header, value]): Attempt => ({
    name: `${header} header`,
    target: '/v2/projects/p1/apps/a1',
    headers: [`${header}: ${value}`],
    expect: { refused: 400 },
  })),
  {
    name: '_method query parameter',
    method: 'POST',
    target: '/v2/projects/p1/apps?_method=DELETE',
    headers: ['Content-Length: 0'],
    expect: { refused: 400 },
  },
  { name: 'encoded _method query parameter', target: '/v2/projects/p1/apps/a1?x=1&%5Fmethod=DELETE', expect: { refused: 400 } },
  {
    name: 'a query value that merely mentions _method',
    target: '/v2/projects/p1/apps/a1?q=_method%3DDELETE',
    expect: { forwarded: 'GET /v2/projects/p1/apps/a1' },
  },
  { name: 'two Host headers', target: '/v2/projects', headers: ['Host: b.example'], expect: { refused: 400 } },
  {
    name: 'too many headers',
    target: '/v2/projects',
    headers: Array.from({ length: 60 }, (_, i) => `X-H${i}: ${i}`),
    expect: { refused: 431 },
  },
  { name: 'HEAD', method: 'HEAD', target: '/v2/projects/p1/apps/a1', expect: { forwarded: 'HEAD /v2/projects/p1/apps/a1' } },
  { name: 'OPTIONS', method: 'OPTIONS', target: '/v2/projects/p1/apps', expect: { forwarded: 'OPTIONS /v2/projects/p1/apps' } },
  {
    name: 'unusual but valid method',
    method: 'PROPFIND',
    target: '/v2/projects/p1/apps',
    expect: { forwarded: 'PROPFIND /v2/projects/p1/apps' },
  },
  { name: 'region prefix with an encoded dash', target: '/regions/us%2Dsouth/v2/projects', expect: { forwarded: 'GET /v2/projects' } },
  { name: 'region prefix climbing out', target: '/regions/us-south/../eu-de/v2/projects', expect: { refused: 400 } },
  { name: 'unconfigured region', target: '/regions/eu-de/v2/projects', expect: { refused: 400 } },
  {
    name: 'kubernetes secret through a dot-dot from configmaps',
    target: '/api/v1/namespaces/ns1/configmaps/../secrets/s1',
    expect: { forwarded: 'GET /api/v1/namespaces/ns1/secrets/s1' },
  },
];

/** Parser-level refusals: Node's HTTP parser rejects these before the gateway sees a request. */
const PARSER_ATTEMPTS: Array<{ name: string; bytes: string; status: number; headValid?: boolean }> = [
  { name: 'lower-case method', bytes: 'get /v2/projects/marker-lc HTTP/1.1\r\nHost: x\r\n\r\n', status: 400 },
  { name: 'unknown method', bytes: 'FOO /v2/projects/marker-unknown HTTP/1.1\r\nHost: x\r\n\r\n', status: 400 },
  {
    name: 'Content-Length with Transfer-Encoding',
    bytes: 'POST /v2/projects/marker-clte HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    status: 400,
  },
  {
    name: 'two Content-Length',
    bytes: 'POST /v2/projects/marker-cl2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
    status: 400,
  },
  { name: 'obsolete line folding', bytes: 'GET /v2/projects/marker-fold HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n', status: 400 },
  {
    name: 'transfer-encoding other than chunked',
    bytes: 'POST /v2/projects/marker-te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n0\r\n\r\n',
    status: 400,
  },
  {
    name: 'space before colon',
    bytes: 'GET /v2/projects/marker-space HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello',
    status: 400,
  },
  { name: 'bare LF line endings', bytes: 'GET /v2/projects/marker-lf HTTP/1.1\nHost: x\n\n', status: 400 },
  {
    name: 'malformed chunk size',
    bytes: 'POST /v2/projects/marker-chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n',
    status: 400,
    headValid: true,
  },
  {
    name: 'CONNECT',
    bytes: 'CONNECT api.us-south.codeengine.cloud.ibm.com:443 HTTP/1.1\r\nHost: api.us-south.codeengine.cloud.ibm.com:443\r\n\r\n',
    status: 405,
  },
];

describe.each(FRONT_ENDS)('%s', (frontEnd) => {
  let h: AuditHarness;
  let port: number;

  beforeAll(async () => {
    h = await startFrontEnd(frontEnd, { ACTION_CATALOG: 'current', MAX_HEADERS: '50' }, '');
    port = Number(new URL(h.url).port);
  });
  afterAll(() => h.close());

  function forwardedFor(txId: string): RecordedRequest[] {
    return h.upstream.requests.filter((r) => r.headers['x-correlation-id'] === txId);
  }

  describe.each(ATTEMPTS.map((a, i) => [a.name, a, `ev-${i}`] as const))('%s', (_name, attempt, txId) => {
    test('refused and audited, or forwarded exactly as audited', async () => {
      const lines = [
        `${attempt.method ?? 'GET'} ${attempt.target} HTTP/1.1`,
        'Host: gw.example',
        `X-Transaction-Id: ${txId}`,
        ...(attempt.headers ?? []),
      ];
      const res = await rawRequest(port, `${lines.join('\r\n')}\r\n\r\n`);
      const [event] = await h.eventsFor(txId);
      expect(event).toBeDefined();
      const e = event as AuditEvent;
      const forwarded = forwardedFor(txId);
      if ('refused' in attempt.expect) {
        expect(res.status).toBe(attempt.expect.refused);
        expect(forwarded).toEqual([]);
        expect(e.outcome).toBe('failure');
        expect(e.reason.reasonCode).toBe(attempt.expect.refused);
        expect(e.reason.reasonForFailure).toBeDefined();
        return;
      }
      expect(forwarded).toHaveLength(1);
      const upstream = forwarded[0] as RecordedRequest;
      expect(`${upstream.method} ${upstream.path}`).toBe(attempt.expect.forwarded);
      // What the upstream executed is what the event names.
      expect(e.requestData.method).toBe(upstream.method);
      expect(e.requestData.path).toBe(upstream.path);
      const expected = catalog.match(upstream.method, parseRequestTarget(upstream.url).segments).operation.actions.current;
      expect(e.action).toBe(expected);
    });
  });

  // CONNECT is the standalone listener's to refuse: in an app, Node closes it (the middleware's attach leaves it alone).
  const parserAttempts = frontEnd === 'gateway' ? PARSER_ATTEMPTS : PARSER_ATTEMPTS.filter((a) => !a.bytes.startsWith('CONNECT '));

  describe.each(parserAttempts.map((a) => [a.name, a] as const))('parser: %s', (_name, attempt) => {
    test('refused with a clear status, never forwarded, audited when the request line is readable', async () => {
      const before = h.upstream.requests.length;
      const res = await rawRequest(port, attempt.bytes);
      expect(res.status).toBe(attempt.status);
      expect(res.head).toMatch(/content-type: application\/json/i);
      expect(JSON.parse(res.body).errors[0].message).toMatch(/refused|not accepted/);
      expect(h.upstream.requests.length).toBe(before);
      const marker = /\/v2\/projects\/(marker-[a-z0-9]+)/.exec(attempt.bytes)?.[1];
      if (marker) {
        const events = (await h.events()).filter((e) => e.requestData.path === `/v2/projects/${marker}`);
        expect(events).toHaveLength(1);
        expect(events[0]).toMatchObject({ outcome: 'failure', reason: { reasonCode: attempt.status } });
        // A refused head is never read for credentials; a valid head with a malformed body was.
        expect(events[0]?.initiator.credential.type).toBe(attempt.headValid ? 'public-access' : 'unknown');
      }
    });
  });
});
