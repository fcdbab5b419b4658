/**
 * IamTokenProvider against the receiver's IAM endpoint (caching, refresh, shared requests, refused keys) and a
 * stub IAM for the cases the receiver does not produce (slow, 5xx, an early refresh failing).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { IamTokenError, IamTokenProvider, refreshMarginMs } from '../../src/delivery/sinks/iam-token';
import { startReceiver, type Receiver } from '../../src/receiver/receiver';

const IAM_KEY = 'iam-apikey-sink-test-51f0c2d8';
const providers: IamTokenProvider[] = [];
let rx: Receiver;

beforeAll(async () => {
  rx = await startReceiver({ iamApiKeys: [IAM_KEY] });
});
afterAll(async () => {
  await Promise.all(providers.map((p) => p.close()));
  await rx.close();
});
beforeEach(() => rx.reset());

function provider(url = rx.iamTokenUrl, apiKey = IAM_KEY, timeoutMs = 5000): IamTokenProvider {
  const p = new IamTokenProvider({ url, apiKey, timeoutMs });
  providers.push(p);
  return p;
}

const signal = (): AbortSignal => AbortSignal.timeout(5000);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A stub IAM: `handler` decides each answer. */
async function stubIam(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => handler(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/identity/token`,
    server,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

function tokenReply(res: ServerResponse, token: string, expiresIn = 3600): void {
  res
    .writeHead(200, { 'content-type': 'application/json' })
    .end(JSON.stringify({ access_token: token, expires_in: expiresIn, expiration: Math.floor(Date.now() / 1000) + expiresIn }));
}

test('the refresh margin: 10% of the lifetime or 5 minutes, at least 10 s (half-life for very short tokens)', () => {
  expect(refreshMarginMs(3600_000)).toBe(300_000);
  expect(refreshMarginMs(1200_000)).toBe(120_000);
  expect(refreshMarginMs(60_000)).toBe(10_000);
  expect(refreshMarginMs(1000)).toBe(500);
});

test('a token is fetched once and cached', async () => {
  const p = provider();
  const first = await p.token(signal());
  expect(first).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  expect(await p.token(signal())).toBe(first);
  expect(await p.token(signal())).toBe(first);
  expect(rx.tokensIssued).toBe(1);
  const req = rx.requests[0];
  expect(req?.headers['content-type']).toBe('application/x-www-form-urlencoded');
  expect(req?.headers.accept).toBe('application/json');
});

test('concurrent callers share one request', async () => {
  const p = provider();
  const tokens = await Promise.all(Array.from({ length: 20 }, () => p.token(signal())));
  expect(new Set(tokens).size).toBe(1);
  expect(rx.tokensIssued).toBe(1);
});

test('a token is refreshed before it expires', async () => {
  const short = await startReceiver({ iamApiKeys: [IAM_KEY], tokenTtlSeconds: 1 });
  try {
    const p = provider(short.iamTokenUrl);
    const first = await p.token(signal());
    expect(await p.token(signal())).toBe(first);
    await sleep(600); // a 1 s token is refreshed after half its life
    const second = await p.token(signal());
    expect(second).not.toBe(first);
    expect(short.tokensIssued).toBe(2);
  } finally {
    await short.close();
  }
});

test('invalidate() forces a new token; invalidate(token) only if that token is still the cached one', async () => {
  const p = provider();
  const first = await p.token(signal());
  p.invalidate('some-older-token');
  expect(await p.token(signal())).toBe(first);
  p.invalidate(first);
  const second = await p.token(signal());
  expect(second).not.toBe(first);
  p.invalidate();
  expect(await p.token(signal())).not.toBe(second);
  expect(rx.tokensIssued).toBe(3);
});

test('a refused API key is a non-retryable error with the IAM code and without the key', async () => {
  const wrong = 'iam-apikey-wrong-0d5e7a61';
  const error = await provider(rx.iamTokenUrl, wrong)
    .token(signal())
    .catch((err: unknown) => err);
  expect(error).toBeInstanceOf(IamTokenError);
  const e = error as IamTokenError;
  expect(e.retryable).toBe(false);
  expect(e.status).toBe(400);
  expect(e.message).toMatch(/^IAM answered 400 Bad Request: BXNIM0415E Provided API key could not be found/);
  expect(e.message).not.toContain(wrong);
});

test('IAM down, 5xx and 429 are retryable; an echoed key is scrubbed', async () => {
  const statuses = [503, 429, 401];
  const stub = await stubIam((_req, res) => {
    const status = statuses.shift() ?? 500;
    res
      .writeHead(status, { 'content-type': 'application/json' })
      .end(JSON.stringify({ errorCode: 'BXNIM0000E', errorMessage: `bad key ${IAM_KEY}` }));
  });
  const p = provider(stub.url);
  const errors = [];
  for (let i = 0; i < 3; i++) errors.push((await p.token(signal()).catch((err: unknown) => err)) as IamTokenError);
  expect(errors.map((e) => [e.status, e.retryable])).toEqual([
    [503, true],
    [429, true],
    [401, false],
  ]);
  for (const e of errors) expect(e.message).not.toContain(IAM_KEY);
  await stub.close();
  const down = (await p.token(signal()).catch((err: unknown) => err)) as IamTokenError;
  expect(down).toBeInstanceOf(IamTokenError);
  expect(down.retryable).toBe(true);
  expect(down.message).toMatch(/^IAM token request failed \((ECONNREFUSED|UND_ERR_SOCKET)\)/);
});

test('a slow IAM: timeoutMs ends the request; one caller giving up does not fail the others', async () => {
  let delayMs = 300;
  let issued = 0;
  const stub = await stubIam((_req, res) => {
    setTimeout(() => tokenReply(res, `token-${++issued}`), delayMs).unref();
  });
  try {
    const p = provider(stub.url, IAM_KEY, 2000);
    const impatient = p.token(AbortSignal.timeout(50));
    const patient = p.token(signal());
    await expect(impatient).rejects.toMatchObject({ name: 'TimeoutError' });
    await expect(patient).resolves.toBe('token-1');
    expect(issued).toBe(1);

    delayMs = 5000;
    const timedOut = provider(stub.url, IAM_KEY, 100);
    await expect(timedOut.token(signal())).rejects.toMatchObject({
      retryable: true,
      message: expect.stringContaining('TimeoutError') as unknown,
    });
  } finally {
    await stub.close();
  }
});

test('when an early refresh fails, the still-valid token is used', async () => {
  let fail = false;
  const stub = await stubIam((_req, res) => {
    if (fail) res.writeHead(503).end('unavailable');
    else tokenReply(res, 'token-ok', 2); // refresh after 1 s, expires after 2 s
  });
  try {
    const p = provider(stub.url);
    expect(await p.token(signal())).toBe('token-ok');
    fail = true;
    await sleep(1100);
    expect(await p.token(signal())).toBe('token-ok');
    await sleep(900);
    await expect(p.token(signal())).rejects.toMatchObject({ retryable: true, status: 503 });
  } finally {
    await stub.close();
  }
});
