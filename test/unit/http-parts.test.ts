import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import fc from 'fast-check';
import { clientAddressOf, type ClientAddress } from '../../src/http/client-address';
import { TRANSACTION_ID_HEADERS, transactionIdFor } from '../../src/http/transaction-id';
import { clientResponseHeaders, flattenHeaders, upstreamRequestHeaders, type UpstreamHeaderInput } from '../../src/proxy/headers';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('transactionIdFor', () => {
  test('the documented order of preference', () => {
    expect(TRANSACTION_ID_HEADERS).toEqual(['x-transaction-id', 'x-correlation-id', 'x-request-id', 'x-global-transaction-id']);
  });

  test('x-transaction-id > x-correlation-id > x-request-id > x-global-transaction-id', () => {
    const all: IncomingHttpHeaders = {
      'x-global-transaction-id': 'g-1',
      'x-request-id': 'r-1',
      'x-correlation-id': 'c-1',
      'x-transaction-id': 't-1',
    };
    expect(transactionIdFor(all)).toBe('t-1');
    expect(transactionIdFor({ ...all, 'x-transaction-id': undefined })).toBe('c-1');
    expect(transactionIdFor({ 'x-request-id': 'r-1', 'x-global-transaction-id': 'g-1' })).toBe('r-1');
    expect(transactionIdFor({ 'x-global-transaction-id': 'g-1' })).toBe('g-1');
  });

  test('well-formed ids may use letters, digits, ".", "_", ":" and "-" up to 128 characters', () => {
    expect(transactionIdFor({ 'x-request-id': 'codeengine-api.1_2:3-4' })).toBe('codeengine-api.1_2:3-4');
    const max = 'a'.repeat(128);
    expect(transactionIdFor({ 'x-request-id': max })).toBe(max);
  });

  test.each([
    ['129 characters', 'a'.repeat(129)],
    ['a space', 'abc def'],
    ['markup', '<script>alert(1)</script>'],
    ['an empty value', ''],
    ['a newline', 'abc\ndef'],
    ['a comma-joined duplicate', 'a-1, a-2'],
    ['non-ASCII', 'idé'],
  ])('a malformed value is skipped (%s) and the next header is used', (_label, bad) => {
    expect(transactionIdFor({ 'x-transaction-id': bad, 'x-request-id': 'good-1' })).toBe('good-1');
  });

  test('only malformed or missing values: a fresh UUID, never an echo', () => {
    const first = transactionIdFor({ 'x-transaction-id': '<script>', 'x-correlation-id': 'a b' });
    const second = transactionIdFor({});
    expect(first).toMatch(UUID_V4);
    expect(second).toMatch(UUID_V4);
    expect(first).not.toBe(second);
  });

  test('array values (repeated headers) are not used', () => {
    expect(transactionIdFor({ 'x-transaction-id': ['a', 'b'] as unknown as string, 'x-request-id': 'r-2' })).toBe('r-2');
  });

  test('property: the result is the first well-formed header in preference order, else a UUID', () => {
    const value = fc.option(fc.oneof(fc.stringMatching(/^[A-Za-z0-9._:-]{1,130}$/), fc.string({ maxLength: 20 })), { nil: undefined });
    fc.assert(
      fc.property(fc.tuple(value, value, value, value), (values) => {
        const headers: IncomingHttpHeaders = {};
        TRANSACTION_ID_HEADERS.forEach((name, i) => {
          if (values[i] !== undefined) headers[name] = values[i];
        });
        const expected = values.find((v): v is string => v !== undefined && /^[A-Za-z0-9._:-]{1,128}$/.test(v));
        const result = transactionIdFor(headers);
        if (expected !== undefined) expect(result).toBe(expected);
        else expect(result).toMatch(UUID_V4);
      }),
      { numRuns: 300 },
    );
  });
});

function fakeRequest(remoteAddress: string | undefined, headers: IncomingHttpHeaders = {}): IncomingMessage {
  return { socket: { remoteAddress }, headers } as unknown as IncomingMessage;
}

function blockList(entries: ReadonlyArray<[string, number?]>): BlockList {
  const list = new BlockList();
  for (const [address, prefix] of entries) {
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, prefix, type);
  }
  return list;
}

describe('clientAddressOf', () => {
  const trusted = blockList([['10.0.0.0', 8], ['fd00::', 8], ['127.0.0.1']]);

  test('without trusted proxies: the socket peer, X-Forwarded-For ignored', () => {
    const req = fakeRequest('198.51.100.20', { 'x-forwarded-for': '1.2.3.4' });
    expect(clientAddressOf(req, undefined)).toEqual<ClientAddress>({ address: '198.51.100.20', addressType: 'IPv4' });
  });

  test('IPv4-mapped IPv6 peers are shown as plain IPv4', () => {
    expect(clientAddressOf(fakeRequest('::ffff:203.0.113.5'), undefined)).toEqual<ClientAddress>({
      address: '203.0.113.5',
      addressType: 'IPv4',
    });
  });

  test('IPv6 peers keep their form and type', () => {
    expect(clientAddressOf(fakeRequest('2001:db8::7'), undefined)).toEqual<ClientAddress>({ address: '2001:db8::7', addressType: 'IPv6' });
    expect(clientAddressOf(fakeRequest('::1'), trusted)).toEqual<ClientAddress>({ address: '::1', addressType: 'IPv6' });
  });

  test('no socket address: "unknown"', () => {
    expect(clientAddressOf(fakeRequest(undefined, { 'x-forwarded-for': '1.2.3.4' }), trusted).address).toBe('unknown');
  });

  test('a spoofed X-Forwarded-For from an untrusted peer is ignored', () => {
    const req = fakeRequest('198.51.100.20', { 'x-forwarded-for': '10.0.0.1, 203.0.113.99' });
    expect(clientAddressOf(req, trusted)).toEqual<ClientAddress>({ address: '198.51.100.20', addressType: 'IPv4' });
  });

  test('behind a trusted proxy: the right-most untrusted hop', () => {
    const req = fakeRequest('10.0.0.2', { 'x-forwarded-for': '6.6.6.6, 203.0.113.9, 10.1.2.3' });
    expect(clientAddressOf(req, trusted)).toEqual<ClientAddress>({ address: '203.0.113.9', addressType: 'IPv4' });
  });

  test('a trusted peer given as IPv4-mapped IPv6 is recognised', () => {
    const req = fakeRequest('::ffff:10.0.0.2', { 'x-forwarded-for': '203.0.113.9' });
    expect(clientAddressOf(req, trusted).address).toBe('203.0.113.9');
  });

  test('hops are trimmed and IPv4-mapped hops unwrapped; IPv6 hops typed', () => {
    expect(
      clientAddressOf(fakeRequest('10.0.0.2', { 'x-forwarded-for': '  ::ffff:198.51.100.4 ,10.0.0.9 ' }), trusted),
    ).toEqual<ClientAddress>({
      address: '198.51.100.4',
      addressType: 'IPv4',
    });
    expect(clientAddressOf(fakeRequest('fd00::1', { 'x-forwarded-for': '2001:db8::42, fd00::9' }), trusted)).toEqual<ClientAddress>({
      address: '2001:db8::42',
      addressType: 'IPv6',
    });
  });

  test('a garbage hop (before any untrusted one) gives the peer', () => {
    expect(clientAddressOf(fakeRequest('10.0.0.2', { 'x-forwarded-for': '203.0.113.9, not-an-ip, 10.0.0.7' }), trusted).address).toBe(
      '10.0.0.2',
    );
    expect(clientAddressOf(fakeRequest('10.0.0.2', { 'x-forwarded-for': '203.0.113.9:4444' }), trusted).address).toBe('10.0.0.2');
    expect(clientAddressOf(fakeRequest('10.0.0.2', { 'x-forwarded-for': '203.0.113.9,,10.0.0.7' }), trusted).address).toBe('10.0.0.2');
  });

  test('garbage left of the chosen hop does not matter', () => {
    expect(clientAddressOf(fakeRequest('10.0.0.2', { 'x-forwarded-for': 'garbage, 203.0.113.9, 10.0.0.7' }), trusted).address).toBe(
      '203.0.113.9',
    );
  });

  test('an empty or missing header behind a trusted proxy gives the peer', () => {
    expect(clientAddressOf(fakeRequest('10.0.0.2', { 'x-forwarded-for': '' }), trusted).address).toBe('10.0.0.2');
    expect(clientAddressOf(fakeRequest('10.0.0.2'), trusted).address).toBe('10.0.0.2');
  });

  test('when every hop is trusted, the left-most one', () => {
    expect(clientAddressOf(fakeRequest('10.0.0.2', { 'x-forwarded-for': '10.9.9.9, 127.0.0.1' }), trusted).address).toBe('10.9.9.9');
  });

  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
  const hop = fc.oneof(
    ipv4,
    ipv4.map((a) => `10.${a.split('.').slice(1).join('.')}`),
    fc.constantFrom('2001:db8::1', 'fd00::5', 'garbage', '', '::ffff:10.0.0.3'),
  );

  test('property: an untrusted peer always wins, whatever X-Forwarded-For says', () => {
    fc.assert(
      fc.property(
        ipv4.filter((a) => !a.startsWith('10.') && a !== '127.0.0.1'),
        fc.array(hop, { maxLength: 5 }),
        (peer, hops) => {
          expect(clientAddressOf(fakeRequest(peer, { 'x-forwarded-for': hops.join(', ') }), trusted).address).toBe(peer);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('property: behind a trusted peer the answer is the peer or one of the hops, never a trusted hop unless all are', () => {
    fc.assert(
      fc.property(fc.array(hop, { minLength: 1, maxLength: 5 }), (hops) => {
        const result = clientAddressOf(fakeRequest('10.0.0.2', { 'x-forwarded-for': hops.join(', ') }), trusted);
        const plainHops = hops.map((h) => (h.startsWith('::ffff:') ? h.slice(7) : h));
        expect(result.address === '10.0.0.2' || plainHops.includes(result.address)).toBe(true);
        expect(result.addressType).toBe(isIP(result.address) === 6 ? 'IPv6' : 'IPv4');
        const isTrusted = (a: string): boolean => trusted.check(a, isIP(a) === 6 ? 'ipv6' : 'ipv4');
        if (result.address !== '10.0.0.2' && isTrusted(result.address)) {
          expect(plainHops.every((h) => isIP(h) !== 0 && isTrusted(h))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('upstreamRequestHeaders', () => {
  const base: Omit<UpstreamHeaderInput, 'rawHeaders'> = {
    host: 'api.us-south.codeengine.cloud.ibm.com',
    transactionId: 'tx-1',
    clientAddress: '203.0.113.7',
    proto: 'http',
    contentLength: undefined,
  };

  test('drops hop-by-hop and Connection-listed headers, owns host/XFF/XFP/correlation id, keeps the rest in order and case', () => {
    // prettier-ignore
    const rawHeaders = [
      'Host', 'localhost:8080',
      'Authorization', 'Bearer abc',
      'X-Hop-Header', 'first',
      'Connection', 'keep-alive, X-Hop-Header,x-other-hop',
      'Keep-Alive', 'timeout=5',
      'Transfer-Encoding', 'chunked',
      'TE', 'trailers',
      'Trailer', 'Expires',
      'Upgrade', 'h2c',
      'Proxy-Connection', 'keep-alive',
      'Proxy-Authorization', 'Basic eA==',
      'X-Forwarded-For', '198.51.100.1',
      'X-Forwarded-Proto', 'https',
      'X-Correlation-Id', 'client-chosen',
      'Expect', '100-continue',
      'Content-Length', '12',
      'Accept', 'application/json',
      'X-Custom', 'a',
      'x-custom', 'b',
      'X-OTHER-HOP', 'dropped',
      'If-Match', '*',
      'User-Agent', 'ibmcloud/2.20',
    ];
    // prettier-ignore
    expect(upstreamRequestHeaders({ ...base, rawHeaders, contentLength: '12' })).toEqual([
      'host', 'api.us-south.codeengine.cloud.ibm.com',
      'Authorization', 'Bearer abc',
      'Accept', 'application/json',
      'X-Custom', 'a',
      'x-custom', 'b',
      'If-Match', '*',
      'User-Agent', 'ibmcloud/2.20',
      'content-length', '12',
      'x-forwarded-for', '198.51.100.1, 203.0.113.7',
      'x-forwarded-proto', 'https, http',
      'x-correlation-id', 'tx-1',
    ]);
  });

  test('without incoming forwarding headers and without a body', () => {
    // prettier-ignore
    expect(upstreamRequestHeaders({ ...base, rawHeaders: ['Accept', '*/*'] })).toEqual([
      'host', 'api.us-south.codeengine.cloud.ibm.com',
      'Accept', '*/*',
      'x-forwarded-for', '203.0.113.7',
      'x-forwarded-proto', 'http',
      'x-correlation-id', 'tx-1',
    ]);
  });

  test('repeated X-Forwarded-For / -Proto headers are joined in order before the client is appended', () => {
    const out = upstreamRequestHeaders({
      ...base,
      proto: 'https',
      rawHeaders: ['X-Forwarded-For', '1.1.1.1', 'x-forwarded-for', '2.2.2.2', 'x-forwarded-proto', 'http'],
    });
    expect(out.slice(-6)).toEqual([
      'x-forwarded-for',
      '1.1.1.1, 2.2.2.2, 203.0.113.7',
      'x-forwarded-proto',
      'http, https',
      'x-correlation-id',
      'tx-1',
    ]);
  });

  test('a Connection header naming only close keeps every end-to-end header', () => {
    const out = upstreamRequestHeaders({ ...base, rawHeaders: ['Connection', 'close', 'Accept', 'a', 'Close', 'weird'] });
    expect(out).toEqual([
      'host',
      base.host,
      'Accept',
      'a',
      'Close',
      'weird',
      'x-forwarded-for',
      '203.0.113.7',
      'x-forwarded-proto',
      'http',
      'x-correlation-id',
      'tx-1',
    ]);
  });

  test('property: output is well-formed and keeps every end-to-end header in order', () => {
    const HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
    const OWNED = ['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-correlation-id', 'expect', 'content-length'];
    const names = fc.constantFrom(
      ...HOP.filter((n) => n !== 'connection'),
      ...OWNED,
      'accept',
      'authorization',
      'x-a',
      'x-b',
      'if-match',
      'user-agent',
    );
    const casedName = fc.tuple(names, fc.boolean()).map(([n, upper]) => (upper ? n.toUpperCase() : n));
    const headerValue = fc.stringMatching(/^[a-z0-9 ,=.-]{0,10}$/);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(casedName, headerValue), { maxLength: 12 }),
        fc.option(fc.subarray(['x-a', 'accept', 'X-B']), { nil: undefined }),
        fc.option(fc.stringMatching(/^[0-9]{1,4}$/), { nil: undefined }),
        (pairs, connectionList, contentLength) => {
          const rawHeaders = pairs.flat();
          if (connectionList !== undefined) rawHeaders.push('Connection', connectionList.join(', '));
          const out = upstreamRequestHeaders({ ...base, rawHeaders, contentLength });
          expect(out.length % 2).toBe(0);
          const outNames = out.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
          for (const hop of HOP) expect(outNames).not.toContain(hop);
          expect(out.slice(0, 2)).toEqual(['host', base.host]);
          for (const owned of ['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-correlation-id'])
            expect(outNames.filter((n) => n === owned)).toHaveLength(1);
          expect(outNames.filter((n) => n === 'content-length')).toHaveLength(contentLength === undefined ? 0 : 1);
          expect(outNames.filter((n) => n === 'expect')).toHaveLength(0);
          const listed = new Set((connectionList ?? []).map((n) => n.toLowerCase()));
          const kept = pairs
            .filter(([n]) => !HOP.includes(n.toLowerCase()) && !OWNED.includes(n.toLowerCase()) && !listed.has(n.toLowerCase()))
            .flat();
          const middle = out.slice(2, out.length - 6 - (contentLength === undefined ? 0 : 2));
          expect(middle).toEqual(kept);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('clientResponseHeaders', () => {
  test('keeps duplicate Set-Cookie, drops hop-by-hop and Connection-listed headers, replaces X-Transaction-Id', () => {
    // prettier-ignore
    const raw = [
      'X-Hop', 'listed before Connection',
      'Content-Type', 'application/json',
      'Set-Cookie', 'a=1; Path=/',
      'Connection', 'keep-alive, X-Hop, x-later',
      'Set-Cookie', 'b=2; Path=/',
      'Transfer-Encoding', 'chunked',
      'Keep-Alive', 'timeout=5',
      'X-Transaction-Id', 'upstream-chosen',
      'x-transaction-id', 'another',
      'ETag', '"3"',
      'X-Later', 'listed after',
      'Upgrade', 'h2c',
    ];
    // prettier-ignore
    expect(clientResponseHeaders(raw, 'tx-9')).toEqual([
      'Content-Type', 'application/json',
      'Set-Cookie', 'a=1; Path=/',
      'Set-Cookie', 'b=2; Path=/',
      'ETag', '"3"',
      'X-Transaction-Id', 'tx-9',
    ]);
  });

  test('accepts Buffers (latin1) as undici gives them', () => {
    const raw = [Buffer.from('Content-Type'), Buffer.from('text/plain'), Buffer.from('X-Name'), Buffer.from('caf\u00e9', 'latin1')];
    expect(clientResponseHeaders(raw, 'tx-1')).toEqual(['Content-Type', 'text/plain', 'X-Name', 'caf\u00e9', 'X-Transaction-Id', 'tx-1']);
  });

  test('an empty header list still gets the transaction id', () => {
    expect(clientResponseHeaders([], 'tx-2')).toEqual(['X-Transaction-Id', 'tx-2']);
  });
});

describe('flattenHeaders', () => {
  test('arrays become repeated pairs, undefined values are skipped', () => {
    // prettier-ignore
    expect(flattenHeaders({ 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'], 'x-none': undefined })).toEqual([
      'content-type', 'application/json',
      'set-cookie', 'a=1',
      'set-cookie', 'b=2',
    ]);
  });
});
