/**
 * The Activity Tracker receiver against real HTTP on 127.0.0.1: both ingest APIs, the IAM endpoint, behaviours
 * and the limits of the reference (LogDNA: 24 h window, 207 per line; Cloud Logs: dropped entries).
 */
import { request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import { startReceiver, type Receiver, type ReceiverOptions } from '../../src/receiver/receiver';

const US_KEY = 'ingest-key-us-south-5d1c8a';
const EU_KEY = 'ingest-key-eu-de-93b2f0';
const IAM_KEY = 'iam-apikey-7f3e2a91';
const HOUR = 60 * 60 * 1000;
const OPTIONS: ReceiverOptions = {
  logdnaKeys: { 'us-south': US_KEY, 'eu-de': EU_KEY },
  iamApiKeys: [IAM_KEY],
  maxBodyBytes: 64 * 1024,
  maxLineBytes: 1024,
  cloudLogsMaxLogBytes: 2048,
};

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
}

interface Line {
  timestamp?: number;
  line: string;
  app?: string;
  level?: string;
  meta?: Record<string, unknown>;
}

let rx: Receiver;

beforeAll(async () => {
  rx = await startReceiver(OPTIONS);
});
afterAll(async () => {
  await rx.close();
});
beforeEach(() => {
  rx.reset();
});

function basic(key: string): string {
  return `Basic ${Buffer.from(`${key}:`).toString('base64')}`;
}

function event(n: number): Record<string, unknown> {
  return { action: 'codeengine.app.create', outcome: 'success', reason: { reasonCode: 201 }, correlationId: `tx-${n}` };
}

function line(n: number, timestamp = Date.now()): Line {
  return { timestamp, line: JSON.stringify(event(n)), app: 'ce-audit-gateway', level: 'INFO', meta: { n } };
}

async function reply(res: Response): Promise<Reply> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body };
}

function logdnaUrl(region: string, query = 'hostname=gw-1'): string {
  return `${rx.logdnaUrlTemplate.replace('{region}', region)}?${query}&now=${Date.now()}`;
}

async function logdna(region: string, body: unknown, headers: Record<string, string> = { authorization: basic(US_KEY) }, query?: string) {
  const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const res = await fetch(logdnaUrl(region, query), {
    method: 'POST',
    headers: { 'content-type': 'application/json; charset=UTF-8', ...headers },
    body: payload,
  });
  return reply(res);
}

async function iam(form: string, contentType = 'application/x-www-form-urlencoded'): Promise<Reply> {
  return reply(await fetch(rx.iamTokenUrl, { method: 'POST', headers: { 'content-type': contentType }, body: form }));
}

async function token(): Promise<string> {
  const r = await iam(`grant_type=${encodeURIComponent('urn:ibm:params:oauth:grant-type:apikey')}&apikey=${IAM_KEY}`);
  expect(r.status).toBe(200);
  return (r.body as { access_token: string }).access_token;
}

function entry(n: number, timestamp = Date.now()): Record<string, unknown> {
  return { applicationName: 'ibm-audit-events', subsystemName: 'codeengine', severity: 3, timestamp, text: event(n), computerName: 'gw-1' };
}

async function cloudLogs(region: string, body: unknown, bearer: string | undefined, headers: Record<string, string> = {}): Promise<Reply> {
  const auth: Record<string, string> = bearer === undefined ? {} : { authorization: `Bearer ${bearer}` };
  const res = await fetch(rx.cloudLogsUrlTemplate.replace('{region}', region), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth, ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  return reply(res);
}

describe('LogDNA ingest API', () => {
  it('accepts basic auth, answers 200 with a batch id and stores the parsed events', async () => {
    const r = await logdna('us-south', { lines: [line(1), line(2)] });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ status: 'ok', batchID: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown });
    const events = rx.events('us-south');
    expect(events.map((e) => e.event)).toEqual([event(1), event(2)]);
    expect(events[0]).toMatchObject({
      region: 'us-south',
      api: 'logdna',
      raw: JSON.stringify(event(1)),
      meta: { app: 'ce-audit-gateway', level: 'INFO', hostname: 'gw-1', meta: { n: 1 } },
    });
    expect(rx.requests.map((q) => [q.api, q.region, q.status])).toEqual([['logdna', 'us-south', 200]]);
  });

  it('accepts the apikey header and keeps a line that is not JSON as a string', async () => {
    const r = await logdna('us-south', { lines: [{ line: 'plain text', timestamp: Date.now() }] }, { apikey: US_KEY });
    expect(r.status).toBe(200);
    expect(rx.events()[0]?.event).toBe('plain text');
  });

  it.each([
    ['a wrong key', { authorization: basic(EU_KEY) }, 'us-south'],
    ['no credentials', {}, 'us-south'],
    ['a region without a key', { authorization: basic(US_KEY) }, 'ca-tor'],
  ])('answers 401 with a JSON error for %s', async (_name, headers, region) => {
    const r = await logdna(region, { lines: [line(1)] }, headers);
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error: expect.any(String) as unknown });
    expect(rx.events()).toEqual([]);
  });

  it.each([
    ['no hostname', { lines: [line(1)] }, 'ip=10.0.0.1'],
    ['malformed JSON', '{"lines":[', undefined],
    ['no lines array', { line: 'x' }, undefined],
    ['a line that is not a string', { lines: [{ line: 42 }] }, undefined],
    ['a timestamp that is not a number', { lines: [{ line: 'x', timestamp: 'yesterday' }] }, undefined],
  ])('answers 400 for %s', async (_name, body, query) => {
    const r = await logdna('us-south', body, { authorization: basic(US_KEY) }, query);
    expect(r.status).toBe(400);
    expect(rx.events()).toEqual([]);
  });

  it('rejects lines more than 24 h from now with 207, one status per line, and stores only the others', async () => {
    const now = Date.now();
    const r = await logdna('us-south', { lines: [line(1, now - 25 * HOUR), line(2, now - 23 * HOUR), line(3, now + 25 * HOUR)] });
    expect(r.status).toBe(207);
    expect(r.body).toEqual({
      status: [
        { status: 400, error: expect.stringContaining('24 hours') as unknown },
        { status: 200 },
        { status: 400, error: expect.any(String) as unknown },
      ],
    });
    expect(rx.events().map((e) => e.event)).toEqual([event(2)]);
  });

  it('measures the 24 h window from the now parameter', async () => {
    const old = Date.now() - 30 * HOUR;
    const res = await fetch(`${rx.logdnaUrlTemplate.replace('{region}', 'us-south')}?hostname=h&now=${old + HOUR}`, {
      method: 'POST',
      headers: { authorization: basic(US_KEY), 'content-type': 'application/json' },
      body: JSON.stringify({ lines: [line(1, old)] }),
    });
    expect(res.status).toBe(200);
  });

  it('accepts a gzip body and refuses one that inflates past the body limit', async () => {
    const ok = await logdna('us-south', gzipSync(JSON.stringify({ lines: [line(1)] })), {
      authorization: basic(US_KEY),
      'content-encoding': 'gzip',
    });
    expect(ok.status).toBe(200);
    expect(rx.events()[0]?.event).toEqual(event(1));
    const bomb = gzipSync(Buffer.alloc(1024 * 1024, 0x20));
    const big = await logdna('us-south', bomb, { authorization: basic(US_KEY), 'content-encoding': 'gzip' });
    expect(big.status).toBe(413);
    const bad = await logdna('us-south', Buffer.from('not gzip'), { authorization: basic(US_KEY), 'content-encoding': 'gzip' });
    expect(bad.status).toBe(400);
  });

  it('answers 413 for a body over the limit without reading it', async () => {
    const lines = Array.from({ length: 400 }, (_, n) => line(n));
    const r = await logdna('us-south', { lines });
    expect(r.status).toBe(413);
    expect(rx.requests[0]?.bodyBytes).toBeLessThanOrEqual(64 * 1024);
    expect(rx.events()).toEqual([]);
  });

  it('stops reading a chunked body at the limit', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(logdnaUrl('us-south'), {
        method: 'POST',
        headers: { authorization: basic(US_KEY), 'content-type': 'application/json' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(16 * 1024, 0x20);
      let sent = 0;
      const pump = (): void => {
        while (sent < 40 && !req.destroyed) {
          sent += 1;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        if (!req.destroyed) req.end();
      };
      pump();
    });
    expect(status).toBe(413);
    expect(rx.requests[0]?.bodyBytes).toBeLessThanOrEqual(64 * 1024 + 16 * 1024);
  });

  it('answers 413 for a line over the line limit in reject mode', async () => {
    const r = await logdna('us-south', { lines: [line(1), { line: 'x'.repeat(1025) }] });
    expect(r.status).toBe(413);
    expect(rx.events()).toEqual([]);
  });

  it('truncates a long line in truncate mode', async () => {
    const other = await startReceiver({ ...OPTIONS, lineLimitMode: 'truncate', maxLineBytes: 10 });
    try {
      const res = await fetch(`${other.logdnaUrlTemplate.replace('{region}', 'us-south')}?hostname=h`, {
        method: 'POST',
        headers: { authorization: basic(US_KEY), 'content-type': 'application/json' },
        body: JSON.stringify({ lines: [{ line: 'éééééééé' }] }),
      });
      expect(res.status).toBe(200);
      expect(other.events()[0]).toMatchObject({ event: 'ééééé', raw: 'ééééé', meta: { truncated: true } });
    } finally {
      await other.close();
    }
  });
});

describe('IAM token endpoint', () => {
  const grant = `grant_type=${encodeURIComponent('urn:ibm:params:oauth:grant-type:apikey')}`;

  it('exchanges a known API key for a bearer token', async () => {
    const before = Math.floor(Date.now() / 1000);
    const r = await iam(`${grant}&apikey=${IAM_KEY}`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      access_token: expect.any(String) as unknown,
      refresh_token: 'not_supported',
      token_type: 'Bearer',
      expires_in: 3600,
      expiration: expect.any(Number) as unknown,
      scope: 'ibm openid',
    });
    const { expiration } = r.body as { expiration: number };
    expect(expiration).toBeGreaterThanOrEqual(before + 3600);
    expect(expiration).toBeLessThanOrEqual(before + 3601);
    expect(rx.tokensIssued).toBe(1);
  });

  it.each([
    ['an unknown API key', `${grant}&apikey=nope`, undefined, 'BXNIM0415E'],
    ['a wrong grant type', 'grant_type=password&apikey=' + IAM_KEY, undefined, 'BXNIM0103E'],
    ['no API key', grant, undefined, 'BXNIM0109E'],
    [
      'a JSON body',
      JSON.stringify({ grant_type: 'urn:ibm:params:oauth:grant-type:apikey', apikey: IAM_KEY }),
      'application/json',
      'BXNIM0109E',
    ],
  ])('answers 400 for %s', async (_name, form, contentType, code) => {
    const r = await iam(form, contentType);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ errorCode: code, errorMessage: expect.any(String) as unknown });
    expect(rx.tokensIssued).toBe(0);
  });

  it('issues tokens that expire', async () => {
    const short = await startReceiver({ ...OPTIONS, tokenTtlSeconds: 0.2 });
    try {
      const res = await fetch(short.iamTokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `${grant}&apikey=${IAM_KEY}`,
      });
      const { access_token: accessToken } = (await res.json()) as { access_token: string };
      const send = async (): Promise<number> =>
        (
          await fetch(short.cloudLogsUrlTemplate.replace('{region}', 'us-south'), {
            method: 'POST',
            headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
            body: JSON.stringify([entry(1)]),
          })
        ).status;
      expect(await send()).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 250));
      expect(await send()).toBe(401);
      expect(short.events()).toHaveLength(1);
    } finally {
      await short.close();
    }
  });
});

describe('Cloud Logs ingest API', () => {
  it('answers 401 without a token or with one it did not issue', async () => {
    expect((await cloudLogs('us-south', [entry(1)], undefined)).status).toBe(401);
    expect((await cloudLogs('us-south', [entry(1)], 'made-up-token')).status).toBe(401);
    expect((await cloudLogs('us-south', [entry(1)], undefined, { authorization: basic(US_KEY) })).status).toBe(401);
    expect(rx.events()).toEqual([]);
  });

  it('accepts entries with a valid token, answers {} and stores them', async () => {
    const bearer = await token();
    const text = { ...entry(2), text: JSON.stringify(event(2)) };
    const r = await cloudLogs('eu-de', [entry(1), text], bearer);
    expect(r).toMatchObject({ status: 200, body: {} });
    const events = rx.events('eu-de');
    expect(events.map((e) => e.event)).toEqual([event(1), event(2)]);
    expect(events[0]).toMatchObject({
      api: 'cloud-logs',
      raw: JSON.stringify(event(1)),
      meta: { applicationName: 'ibm-audit-events', subsystemName: 'codeengine', severity: 3, computerName: 'gw-1' },
    });
  });

  it.each([
    ['a body that is not an array', { logs: [] }],
    ['a severity out of range', [{ ...entry(1), severity: 7 }]],
    ['no subsystemName', [{ ...entry(1), subsystemName: undefined }]],
    ['a text that is a number', [{ ...entry(1), text: 5 }]],
    ['no timestamp', [{ ...entry(1), timestamp: undefined }]],
    ['malformed JSON', '[{"applicationName":'],
  ])('answers 400 for %s', async (_name, body) => {
    expect((await cloudLogs('us-south', body, await token())).status).toBe(400);
    expect(rx.events()).toEqual([]);
  });

  it('answers 413 for an entry text over the per-log limit', async () => {
    const r = await cloudLogs('us-south', [entry(1), { ...entry(2), text: 'y'.repeat(2049) }], await token());
    expect(r.status).toBe(413);
    expect(rx.events()).toEqual([]);
  });

  it('answers 413 for a body over the limit, also gzipped', async () => {
    const bearer = await token();
    const big = Array.from({ length: 40 }, (_, n) => ({ ...entry(n), text: 'z'.repeat(2000) }));
    expect((await cloudLogs('us-south', big, bearer)).status).toBe(413);
    const gz = gzipSync(JSON.stringify(big));
    expect(gz.length).toBeLessThan(64 * 1024);
    expect((await cloudLogs('us-south', gz, bearer, { 'content-encoding': 'gzip' })).status).toBe(413);
    const small = gzipSync(JSON.stringify([entry(1)]));
    expect((await cloudLogs('us-south', small, bearer, { 'content-encoding': 'gzip' })).status).toBe(200);
  });

  it('drops entries older than 24 h or more than 4 h ahead: 200 with the count, not stored', async () => {
    const now = Date.now();
    const r = await cloudLogs(
      'us-south',
      [entry(1, now - 25 * HOUR), entry(2, now - 23 * HOUR), entry(3, now + 5 * HOUR), entry(4, now + 3 * HOUR)],
      await token(),
    );
    expect(r).toMatchObject({ status: 200, body: { dropped: 2, reason: expect.stringContaining('24 h') as unknown } });
    expect(rx.events().map((e) => e.event)).toEqual([event(2), event(4)]);
  });
});

describe('behaviours', () => {
  it('partial: LogDNA answers 207 rejecting every Nth line; Cloud Logs reports them dropped', async () => {
    rx.behave('us-south', { mode: 'partial', rejectEvery: 2, status: 500, times: 2 });
    const r = await logdna('us-south', { lines: [line(1), line(2), line(3), line(4), line(5)] });
    expect(r.status).toBe(207);
    expect((r.body as { status: Array<{ status: number }> }).status.map((s) => s.status)).toEqual([200, 500, 200, 500, 200]);
    const c = await cloudLogs('us-south', [entry(6), entry(7), entry(8)], await token());
    expect(c).toMatchObject({ status: 200, body: { dropped: 1 } });
    expect(rx.events().map((e) => (e.event as { correlationId: string }).correlationId)).toEqual(['tx-1', 'tx-3', 'tx-5', 'tx-6', 'tx-8']);
    expect((await logdna('us-south', { lines: [line(9), line(10)] })).status).toBe(200);
  });

  it('throttle: 429 with Retry-After for the next N requests, then ok', async () => {
    rx.behave('us-south', { mode: 'throttle', retryAfterSeconds: 7, times: 2 });
    const first = await logdna('us-south', { lines: [line(1)] });
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('7');
    expect((await cloudLogs('us-south', [entry(2)], await token())).status).toBe(429);
    expect((await logdna('us-south', { lines: [line(3)] })).status).toBe(200);
    expect(rx.events()).toHaveLength(1);
  });

  it('status: 5xx on both APIs of the region, then recovery; other regions unaffected', async () => {
    rx.behave('us-south', { mode: 'status', status: 503, times: 2 });
    const bearer = await token();
    expect((await logdna('us-south', { lines: [line(1)] })).status).toBe(503);
    expect((await logdna('eu-de', { lines: [line(2)] }, { authorization: basic(EU_KEY) })).status).toBe(200);
    expect((await cloudLogs('us-south', [entry(3)], bearer)).status).toBe(503);
    expect((await cloudLogs('us-south', [entry(4)], bearer)).status).toBe(200);
    expect(rx.events().map((e) => e.region)).toEqual(['eu-de', 'us-south']);
  });

  it("'*' applies to every region and replaces per-region behaviours; a region's own behaviour wins over '*'", async () => {
    rx.behave('eu-de', { mode: 'status', status: 500 });
    rx.behave('*', { mode: 'status', status: 502 });
    expect((await logdna('eu-de', { lines: [line(1)] }, { authorization: basic(EU_KEY) })).status).toBe(502);
    rx.behave('us-south', { mode: 'ok' });
    expect((await logdna('us-south', { lines: [line(2)] })).status).toBe(200);
    expect((await logdna('eu-de', { lines: [line(3)] }, { authorization: basic(EU_KEY) })).status).toBe(502);
    rx.behave('*', { mode: 'ok' });
    expect((await logdna('eu-de', { lines: [line(4)] }, { authorization: basic(EU_KEY) })).status).toBe(200);
  });

  it('hang: never answers until the client gives up; the receiver keeps serving', async () => {
    rx.behave('us-south', { mode: 'hang', times: 1 });
    const controller = new AbortController();
    const pending = fetch(logdnaUrl('us-south'), {
      method: 'POST',
      headers: { authorization: basic(US_KEY), 'content-type': 'application/json' },
      body: JSON.stringify({ lines: [line(1)] }),
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 100);
    await expect(pending).rejects.toThrow(/abort/i);
    expect(rx.requests[0]?.status).toBe(0);
    expect((await logdna('us-south', { lines: [line(2)] })).status).toBe(200);
    expect(rx.events().map((e) => e.event)).toEqual([event(2)]);
  });

  it('hang: close() ends hanging requests', async () => {
    const other = await startReceiver(OPTIONS);
    other.behave('*', { mode: 'hang' });
    const pending = fetch(`${other.logdnaUrlTemplate.replace('{region}', 'us-south')}?hostname=h`, {
      method: 'POST',
      headers: { authorization: basic(US_KEY) },
      body: JSON.stringify({ lines: [line(1)] }),
    });
    while (other.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await other.close();
    await expect(pending).rejects.toThrow();
  });

  it("down: connections are dropped ('*' at connect, a region at its requests) until behaviour changes", async () => {
    rx.behave('*', { mode: 'down' });
    await expect(logdna('us-south', { lines: [line(1)] })).rejects.toThrow(/fetch failed/);
    await expect(fetch(rx.iamTokenUrl, { method: 'POST' })).rejects.toThrow(/fetch failed/);
    rx.behave('*', { mode: 'ok' });
    rx.behave('eu-de', { mode: 'down' });
    await expect(logdna('eu-de', { lines: [line(2)] }, { authorization: basic(EU_KEY) })).rejects.toThrow(/fetch failed/);
    expect((await logdna('us-south', { lines: [line(3)] })).status).toBe(200);
    expect(rx.events().map((e) => e.event)).toEqual([event(3)]);
  });

  it('refuses invalid behaviours', () => {
    expect(() => rx.behave('us-south', { mode: 'status', status: 503, times: 0 })).toThrow(RangeError);
    expect(() => rx.behave('us-south', { mode: 'partial', rejectEvery: 0 })).toThrow(RangeError);
  });
});

describe('receiver bookkeeping', () => {
  it('stores events per region: an event sent to eu-de never appears in us-south', async () => {
    expect((await logdna('eu-de', { lines: [line(1)] }, { authorization: basic(EU_KEY) })).status).toBe(200);
    expect((await cloudLogs('eu-de', [entry(2)], await token())).status).toBe(200);
    expect(rx.events('us-south')).toEqual([]);
    expect(rx.events('eu-de').map((e) => e.api)).toEqual(['logdna', 'cloud-logs']);
    const served = (await (await fetch(`${rx.url}/_events?region=eu-de`)).json()) as unknown[];
    expect(served).toHaveLength(2);
    expect((await (await fetch(`${rx.url}/_events?region=us-south`)).json()) as unknown[]).toEqual([]);
  });

  it('never keeps keys, API keys or tokens in requests or events', async () => {
    await logdna('us-south', { lines: [line(1)] }, { authorization: basic(US_KEY), apikey: US_KEY });
    await logdna('us-south', { lines: [line(2)] }, { authorization: basic(EU_KEY) });
    const bearer = await token();
    await cloudLogs('us-south', [entry(3)], bearer);
    await fetch(`${logdnaUrl('us-south')}&apikey=${US_KEY}`, { method: 'POST', body: '{}' });
    const stored = JSON.stringify({ requests: rx.requests, events: rx.events() });
    for (const secret of [US_KEY, EU_KEY, IAM_KEY, bearer, Buffer.from(`${US_KEY}:`).toString('base64')]) {
      expect(stored).not.toContain(secret);
    }
    expect(rx.requests[0]?.headers).toMatchObject({ authorization: '[REDACTED]', apikey: '[REDACTED]' });
    expect(rx.requests.map((q) => q.status)).toEqual([200, 401, 200, 200, 401]);
  });

  it('answers 404 elsewhere and 405 for other methods; reset clears everything', async () => {
    expect((await fetch(`${rx.url}/logs/ingest`, { method: 'POST' })).status).toBe(404);
    expect((await fetch(`${rx.url}/logdna/US_SOUTH/logs/ingest`, { method: 'POST' })).status).toBe(404);
    const get = await fetch(logdnaUrl('us-south'));
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    await logdna('us-south', { lines: [line(1)] });
    await token();
    rx.behave('*', { mode: 'status', status: 500 });
    rx.reset();
    expect(rx.events()).toEqual([]);
    expect(rx.requests).toEqual([]);
    expect(rx.tokensIssued).toBe(0);
    expect((await logdna('us-south', { lines: [line(2)] })).status).toBe(200);
  });
});
