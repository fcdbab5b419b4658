/**
 * With IAM_JWKS_URL the gateway verifies callers' bearer tokens (RS256 against the key set, issuer, expiry)
 * and each event says whether its initiator was verified; a token that fails still has its claims recorded,
 * marked unverified. The key set is cached, refreshed when a token names an unknown key id (not more often
 * than a floor), and the token itself is never written to the journal or the logs.
 */
import { createHmac, generateKeyPairSync, randomUUID, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { request } from 'undici';
import type { AuditEvent, Initiator } from '../../src/types';
import { readJournal, startHarness, USER_CLAIMS, type Harness } from '../support/harness';
import { closeNow, listenOnLoopback } from '../support/listen';

jest.setTimeout(10_000);

const ISSUER = 'https://iam.cloud.ibm.com/identity';

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  jwk: JsonWebKey;
}

function signingKey(kid: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An RS256 JWT: header {alg, kid}, signed with `key` (which need not be the key `kid` names). */
function rs256(claims: Record<string, unknown>, kid: string, key: KeyObject): string {
  const input = `${b64({ alg: 'RS256', typ: 'JWT', kid })}.${b64(claims)}`;
  return `${input}.${sign('RSA-SHA256', Buffer.from(input), key).toString('base64url')}`;
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** USER_CLAIMS, issued now by IAM, valid an hour; a unique jti so that every token is a distinct string. */
function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...USER_CLAIMS, iss: ISSUER, iat: nowSeconds(), exp: nowSeconds() + 3600, jti: randomUUID(), ...overrides };
}

interface JwksServer {
  url: string;
  /** GET requests for the key set received so far. */
  fetches: () => number;
  setKeys: (keys: JsonWebKey[]) => void;
  close: () => Promise<void>;
}

async function startJwksServer(initial: JsonWebKey[]): Promise<JwksServer> {
  let keys = initial;
  let fetches = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    if (req.method !== 'GET' || req.url !== '/identity/keys') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    fetches++;
    const body = JSON.stringify({ keys });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  const port = await listenOnLoopback(server);
  return {
    url: `http://127.0.0.1:${port}/identity/keys`,
    fetches: () => fetches,
    setKeys: (next) => {
      keys = next;
    },
    close: () => closeNow(server),
  };
}

async function waitFor(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** One call through the gateway with the token (answered 200 by the fake Code Engine). */
async function call(h: Harness, token: string, txId: string): Promise<void> {
  const res = await request(`${h.url}/v2/projects`, {
    headers: { authorization: `Bearer ${token}`, 'x-transaction-id': txId },
    signal: AbortSignal.timeout(5000),
  });
  await res.body.text();
  expect(res.statusCode).toBe(200);
}

/** One call through the gateway with the token; the initiator of its (single) event. */
async function initiatorFor(h: Harness, token: string, txId: string): Promise<Initiator> {
  await call(h, token, txId);
  const events = await h.eventsFor(txId);
  expect(events).toHaveLength(1);
  return (events[0] as AuditEvent).initiator;
}

/** Every token a test sends, checked against the journal and the logs at the end. */
const sentTokens: string[] = [];
function remember(token: string): string {
  sentTokens.push(token);
  return token;
}

async function expectNoTokenWritten(h: Harness, txId: string): Promise<void> {
  // At least one call of its own, so that the check holds when the test runs alone.
  await initiatorFor(h, remember(rs256(claims({ name: 'Last Caller' }), iam.kid, iam.privateKey)), txId);
  const { raw } = await readJournal(h.journalDir);
  const logs = h.logs();
  expect(raw.length).toBeGreaterThan(0);
  for (const token of sentTokens) {
    const signature = token.split('.')[2] ?? '';
    expect(raw.includes(token)).toBe(false);
    expect(logs.includes(token)).toBe(false);
    if (signature.length > 16) {
      expect(raw.includes(signature)).toBe(false);
      expect(logs.includes(signature)).toBe(false);
    }
  }
}

let iam: SigningKey;
let attacker: SigningKey;
let rotated: SigningKey;
beforeAll(() => {
  iam = signingKey('iam-key-1');
  attacker = signingKey('iam-key-1'); // same kid as IAM's key, different key
  rotated = signingKey('iam-key-2');
});

describe('with IAM_JWKS_URL: tokens are verified', () => {
  let jwks: JwksServer;
  let h: Harness;
  beforeAll(async () => {
    jwks = await startJwksServer([iam.jwk]);
    h = await startHarness({ IAM_JWKS_URL: jwks.url });
    // The key set is fetched once at start-up.
    await waitFor(() => jwks.fetches() >= 1);
  });
  afterAll(async () => {
    await h.close();
    await jwks.close();
  });

  test('a valid RS256 token signed by the published key: verified, with its claims', async () => {
    const initiator = await initiatorFor(h, remember(rs256(claims(), iam.kid, iam.privateKey)), 'jwt-valid');
    expect(initiator).toMatchObject({
      id: USER_CLAIMS.iam_id,
      name: USER_CLAIMS.name,
      typeURI: 'service/security/account/user',
      credential: { type: 'apikey', verified: true },
    });
  });

  test('a token signed by another key under the same kid: unverified, claims recorded', async () => {
    const token = remember(rs256(claims({ iam_id: 'IBMid-MALLORY0001', name: 'Mallory' }), attacker.kid, attacker.privateKey));
    for (const tx of ['jwt-forged-1', 'jwt-forged-2']) {
      const initiator = await initiatorFor(h, token, tx);
      expect(initiator.credential.verified).toBe(false);
      expect(initiator).toMatchObject({ id: 'IBMid-MALLORY0001', name: 'Mallory' });
    }
  });

  test('a valid signature over altered claims: unverified', async () => {
    const genuine = rs256(claims(), iam.kid, iam.privateKey);
    const [header = '', , signature = ''] = genuine.split('.');
    const tampered = remember(`${header}.${b64(claims({ iam_id: 'IBMid-MALLORY0002', name: 'Mallory Two' }))}.${signature}`);
    const initiator = await initiatorFor(h, tampered, 'jwt-tampered');
    expect(initiator).toMatchObject({ id: 'IBMid-MALLORY0002', credential: { verified: false } });
  });

  test('alg "none" (no signature): unverified', async () => {
    const token = remember(`${b64({ alg: 'none', typ: 'JWT', kid: iam.kid })}.${b64(claims({ name: 'No Signature' }))}.`);
    const initiator = await initiatorFor(h, token, 'jwt-none');
    expect(initiator).toMatchObject({ id: USER_CLAIMS.iam_id, name: 'No Signature', credential: { verified: false } });
  });

  test('HS256 keyed with the public key (algorithm confusion): unverified', async () => {
    const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: iam.kid })}.${b64(claims({ name: 'Hmac Confusion' }))}`;
    const secret = iam.publicKey.export({ format: 'pem', type: 'spki' });
    const token = remember(`${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`);
    const initiator = await initiatorFor(h, token, 'jwt-hs256');
    expect(initiator).toMatchObject({ name: 'Hmac Confusion', credential: { verified: false } });
  });

  test('expired beyond the 60 s leeway: unverified; expired within it: verified', async () => {
    const expired = remember(rs256(claims({ exp: nowSeconds() - 300, name: 'Expired' }), iam.kid, iam.privateKey));
    expect(await initiatorFor(h, expired, 'jwt-expired')).toMatchObject({ name: 'Expired', credential: { verified: false } });
    const justExpired = remember(rs256(claims({ exp: nowSeconds() - 20, name: 'Just Expired' }), iam.kid, iam.privateKey));
    expect(await initiatorFor(h, justExpired, 'jwt-leeway')).toMatchObject({ name: 'Just Expired', credential: { verified: true } });
  });

  test('no exp claim, or nbf in the future beyond the leeway: unverified', async () => {
    const noExp = claims({ name: 'No Expiry' });
    delete noExp.exp;
    expect(await initiatorFor(h, remember(rs256(noExp, iam.kid, iam.privateKey)), 'jwt-no-exp')).toMatchObject({
      credential: { verified: false },
    });
    const early = remember(rs256(claims({ nbf: nowSeconds() + 600, name: 'Too Early' }), iam.kid, iam.privateKey));
    expect(await initiatorFor(h, early, 'jwt-nbf')).toMatchObject({ name: 'Too Early', credential: { verified: false } });
  });

  test('a wrong issuer: unverified', async () => {
    const token = remember(rs256(claims({ iss: 'https://iam.example.com/identity', name: 'Other Issuer' }), iam.kid, iam.privateKey));
    expect(await initiatorFor(h, token, 'jwt-issuer')).toMatchObject({ name: 'Other Issuer', credential: { verified: false } });
  });

  test('a token that is not a JWT: unverified, the call still proxied', async () => {
    const opaque = remember(`opaque-${randomUUID()}-${randomUUID()}`);
    expect(await initiatorFor(h, opaque, 'jwt-opaque')).toMatchObject({ id: 'unknown', credential: { verified: false } });
  });

  test('many calls with one valid token: the key set is not fetched again (cached)', async () => {
    const before = jwks.fetches();
    const token = remember(rs256(claims({ name: 'Busy Caller' }), iam.kid, iam.privateKey));
    const calls = Array.from({ length: 12 }, (_, i) => `jwt-many-${i}`);
    await Promise.all(calls.map((tx) => call(h, token, tx)));
    let events: AuditEvent[] = [];
    for (const deadline = Date.now() + 5000; events.length < calls.length && Date.now() < deadline;) {
      events = (await h.events()).filter((e) => calls.includes(e.transactionID));
      if (events.length < calls.length) await new Promise((r) => setTimeout(r, 20));
    }
    expect(events.map((e) => e.transactionID).sort()).toEqual([...calls].sort());
    for (const e of events) expect(e.initiator).toMatchObject({ name: 'Busy Caller', credential: { verified: true } });
    expect(jwks.fetches() - before).toBe(0);
    expect(jwks.fetches()).toBeLessThanOrEqual(2);
  });

  test('unknown key ids right after a fetch do not make the gateway fetch again (refresh floor)', async () => {
    const before = jwks.fetches();
    for (let i = 0; i < 5; i++) {
      const token = remember(rs256(claims({ name: `Random Kid ${i}` }), `forged-kid-${i}`, attacker.privateKey));
      expect(await initiatorFor(h, token, `jwt-kid-${i}`)).toMatchObject({ credential: { verified: false } });
    }
    expect(jwks.fetches()).toBe(before);
  });

  test('the tokens never appear in the journal or the logs', async () => {
    await expectNoTokenWritten(h, `leak-check-${randomUUID()}`);
  });
});

describe('key rotation: a token naming a new key id', () => {
  let jwks: JwksServer;
  let h: Harness;
  beforeAll(async () => {
    jwks = await startJwksServer([iam.jwk]);
    h = await startHarness({ IAM_JWKS_URL: jwks.url });
    await waitFor(() => jwks.fetches() >= 1);
  });
  afterAll(async () => {
    jest.restoreAllMocks();
    await h.close();
    await jwks.close();
  });

  test('the gateway refreshes the key set and verifies it', async () => {
    expect(await initiatorFor(h, remember(rs256(claims(), iam.kid, iam.privateKey)), 'rot-old-key')).toMatchObject({
      credential: { verified: true },
    });
    expect(jwks.fetches()).toBe(1);

    // IAM publishes its new key. Refreshes are at most every 30 s (so that forged key ids cannot make the
    // gateway hammer IAM): move the clock past that floor rather than wait for it.
    jwks.setKeys([iam.jwk, rotated.jwk]);
    const realNow = Date.now.bind(Date);
    jest.spyOn(Date, 'now').mockImplementation(() => realNow() + 31_000);
    try {
      const token = remember(rs256(claims({ name: 'Rotated Key' }), rotated.kid, rotated.privateKey));
      expect(await initiatorFor(h, token, 'rot-new-key')).toMatchObject({
        id: USER_CLAIMS.iam_id,
        name: 'Rotated Key',
        credential: { verified: true },
      });
      expect(jwks.fetches()).toBe(2);
    } finally {
      jest.restoreAllMocks();
    }
    // The old key is still in the set: its tokens still verify, without another fetch.
    const old = remember(rs256(claims({ name: 'Old Key Again' }), iam.kid, iam.privateKey));
    expect(await initiatorFor(h, old, 'rot-old-again')).toMatchObject({ credential: { verified: true } });
    expect(jwks.fetches()).toBe(2);
  });

  test('the tokens never appear in the journal or the logs', async () => {
    await expectNoTokenWritten(h, `leak-check-${randomUUID()}`);
  });
});

describe('without IAM_JWKS_URL', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(() => h.close());

  test('a correctly signed token is read but not verified: claims recorded, verified false', async () => {
    const initiator = await initiatorFor(h, remember(rs256(claims(), iam.kid, iam.privateKey)), 'nojwks-valid');
    expect(initiator).toMatchObject({
      id: USER_CLAIMS.iam_id,
      name: USER_CLAIMS.name,
      credential: { type: 'apikey', verified: false },
    });
  });

  test('the tokens never appear in the journal or the logs', async () => {
    await expectNoTokenWritten(h, `leak-check-${randomUUID()}`);
  });
});
