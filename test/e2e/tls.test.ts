/**
 * TLS on both sides of the gateway: the proxy listener terminates TLS itself (TLS_CERT_FILE, TLS_KEY_FILE),
 * bad TLS settings stop the start with a message naming the variable, and upstream TLS is always verified
 * (the system CAs plus UPSTREAM_CA_FILE; never disabled), an unverifiable upstream being an audited 502.
 */
import { writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import path from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { loadConfig } from '../../src/config';
import { GatewayError } from '../../src/errors';
import type { AuditEvent } from '../../src/types';
import { createTestCerts, type PemFiles, type TestCerts } from '../support/certs';
import { iamToken, startHarness, USER_CLAIMS, type Harness } from '../support/harness';
import { closeNow, listenOnLoopback } from '../support/listen';

jest.setTimeout(10_000);

const AUTH = `Bearer ${iamToken(USER_CLAIMS)}`;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function get(url: string, headers: Record<string, string> = {}, dispatcher?: Dispatcher): Promise<Reply> {
  const res = await request(url, {
    method: 'GET',
    headers,
    ...(dispatcher ? { dispatcher } : {}),
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function onlyEvent(h: Harness, txId: string): Promise<AuditEvent> {
  const events = await h.eventsFor(txId);
  expect(events).toHaveLength(1);
  return events[0] as AuditEvent;
}

interface ErrorBody {
  errors: Array<{ code: string; message: string }>;
}

let certs: TestCerts;
beforeAll(() => {
  certs = createTestCerts();
});
afterAll(() => certs.cleanup());

describe('TLS on the proxy listener', () => {
  let h: Harness;
  let trusting: Agent;
  beforeAll(async () => {
    h = await startHarness({ TLS_CERT_FILE: certs.server.certFile, TLS_KEY_FILE: certs.server.keyFile });
    trusting = new Agent({ connect: { ca: certs.ca.cert } });
  });
  afterAll(async () => {
    await trusting.close();
    await h.close();
  });

  test('the proxy address is an https URL on 127.0.0.1', () => {
    expect(h.gateway.proxyAddress.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(h.url.startsWith('https://')).toBe(true);
    // The admin listener stays plain HTTP on loopback.
    expect(h.gateway.adminAddress.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  test('a call over TLS, the CA trusted, is proxied and audited', async () => {
    const res = await get(`${h.url}/v2/projects`, { authorization: AUTH, 'x-transaction-id': 'tls-call-1' }, trusting);
    expect(res.status).toBe(200);
    expect(res.headers['x-transaction-id']).toBe('tls-call-1');
    expect(h.upstream.requests.some((r) => r.path === '/v2/projects' && r.headers['x-correlation-id'] === 'tls-call-1')).toBe(true);
    const e = await onlyEvent(h, 'tls-call-1');
    expect(e).toMatchObject({
      outcome: 'success',
      reason: { reasonCode: 200 },
      requestData: { method: 'GET' },
      initiator: { id: USER_CLAIMS.iam_id, name: USER_CLAIMS.name, host: { address: '127.0.0.1' } },
    });
  });

  test('the upstream is told the client used https (X-Forwarded-Proto)', async () => {
    const res = await get(`${h.url}/v2/_echo`, { 'x-transaction-id': 'tls-echo' }, trusting);
    expect(res.status).toBe(200);
    const echoed = JSON.parse(res.text) as { headers: Record<string, string> };
    expect(echoed.headers['x-forwarded-proto']).toBe('https');
    expect(echoed.headers['x-forwarded-for']).toBe('127.0.0.1');
    await onlyEvent(h, 'tls-echo');
  });

  test('a client that does not trust the CA refuses the gateway certificate', async () => {
    const untrusting = new Agent();
    try {
      await expect(get(`${h.url}/v2/projects`, {}, untrusting)).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    } finally {
      await untrusting.close();
    }
  });

  test('plain HTTP to the TLS port fails and reaches nothing upstream', async () => {
    const plain = new Agent();
    try {
      const plainUrl = h.url.replace(/^https:/, 'http:');
      await expect(get(`${plainUrl}/v2/_echo?plain=1`, { 'x-transaction-id': 'tls-plain' }, plain)).rejects.toThrow();
    } finally {
      await plain.close();
    }
    expect(h.upstream.requests.some((r) => r.url.includes('plain=1'))).toBe(false);
  });
});

describe('MAX_CONNECTIONS counts client connections', () => {
  test('plain HTTP: the one connection allowed by MAX_CONNECTIONS=1 is served', async () => {
    const h = await startHarness({ MAX_CONNECTIONS: '1' });
    const agent = new Agent({ connections: 1 });
    try {
      const res = await get(`${h.url}/v2/projects`, { 'x-transaction-id': 'maxconn-plain' }, agent);
      expect(res.status).toBe(200);
    } finally {
      await agent.close();
      await h.close();
    }
  });

  // Regression: TLS connections were counted on 'connection' and again on 'secureConnection', so a TLS
  // gateway refused calls at half of MAX_CONNECTIONS.
  test('TLS: the one connection allowed by MAX_CONNECTIONS=1 is served (counted once, not twice)', async () => {
    const h = await startHarness({ TLS_CERT_FILE: certs.server.certFile, TLS_KEY_FILE: certs.server.keyFile, MAX_CONNECTIONS: '1' });
    const agent = new Agent({ connections: 1, connect: { ca: certs.ca.cert } });
    try {
      const res = await get(`${h.url}/v2/projects`, { 'x-transaction-id': 'maxconn-tls' }, agent);
      expect(res.status).toBe(200);
    } finally {
      await agent.close();
      await h.close();
    }
  });
});

describe('TLS configuration errors name the variable', () => {
  const base = { PORT: '0', ADMIN_PORT: '0' };

  function configError(env: Record<string, string>): GatewayError {
    let caught: unknown;
    try {
      loadConfig({ ...base, ...env });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(GatewayError);
    const error = caught as GatewayError;
    expect(error.code).toBe('ERR_CONFIG_INVALID');
    return error;
  }

  let notPem: string;
  let missing: string;
  beforeAll(() => {
    notPem = path.join(certs.dir, 'not-pem.txt');
    writeFileSync(notPem, 'this is not a PEM file\n');
    missing = path.join(certs.dir, 'does-not-exist.pem');
  });

  test('the valid pair loads, as PEM buffers', () => {
    const config = loadConfig({ ...base, TLS_CERT_FILE: certs.server.certFile, TLS_KEY_FILE: certs.server.keyFile });
    expect(config.tls?.cert.toString('utf8')).toBe(certs.server.cert);
    expect(config.tls?.key.toString('utf8')).toBe(certs.server.key);
  });

  test('TLS_CERT_FILE without TLS_KEY_FILE', () => {
    expect(configError({ TLS_CERT_FILE: certs.server.certFile }).message).toMatch(/TLS_KEY_FILE/);
  });

  test('TLS_KEY_FILE without TLS_CERT_FILE', () => {
    expect(configError({ TLS_KEY_FILE: certs.server.keyFile }).message).toMatch(/TLS_CERT_FILE/);
  });

  test('a certificate file that is not PEM', () => {
    const message = configError({ TLS_CERT_FILE: notPem, TLS_KEY_FILE: certs.server.keyFile }).message;
    expect(message).toMatch(/TLS_CERT_FILE/);
    expect(message).toMatch(/PEM/);
    expect(message).not.toMatch(/TLS_KEY_FILE/);
  });

  test('a key file that holds a certificate, not a private key', () => {
    const message = configError({ TLS_CERT_FILE: certs.server.certFile, TLS_KEY_FILE: certs.server.certFile }).message;
    expect(message).toMatch(/TLS_KEY_FILE/);
    expect(message).not.toMatch(/TLS_CERT_FILE/);
  });

  test('a missing certificate file', () => {
    const message = configError({ TLS_CERT_FILE: missing, TLS_KEY_FILE: certs.server.keyFile }).message;
    expect(message).toMatch(/TLS_CERT_FILE/);
    expect(message).toMatch(/ENOENT/);
  });

  test('a missing key file', () => {
    expect(configError({ TLS_CERT_FILE: certs.server.certFile, TLS_KEY_FILE: missing }).message).toMatch(/TLS_KEY_FILE.*ENOENT/);
  });

  test('an error never prints the private key', () => {
    const message = configError({ TLS_CERT_FILE: certs.server.keyFile, TLS_KEY_FILE: certs.server.keyFile }).message;
    expect(message).toMatch(/TLS_CERT_FILE/);
    expect(message).not.toContain('PRIVATE KEY-----\n');
    expect(message).not.toContain(certs.server.key.split('\n')[1] as string);
  });

  test('UPSTREAM_CA_FILE not PEM, or missing', () => {
    expect(configError({ UPSTREAM_CA_FILE: notPem }).message).toMatch(/UPSTREAM_CA_FILE/);
    expect(configError({ UPSTREAM_CA_FILE: missing }).message).toMatch(/UPSTREAM_CA_FILE.*ENOENT/);
    expect(loadConfig({ ...base, UPSTREAM_CA_FILE: certs.ca.certFile }).upstreamCa?.toString('utf8')).toBe(certs.ca.cert);
  });

  // Regression: a certificate and a key that do not belong together passed validation and failed later in
  // Gateway.start with OpenSSL's message, naming no variable.
  test('a key that does not belong to the certificate is a configuration error naming TLS_KEY_FILE', () => {
    expect(configError({ TLS_CERT_FILE: certs.server.certFile, TLS_KEY_FILE: certs.selfSigned.keyFile }).message).toMatch(/TLS_KEY_FILE/);
  });
});

interface HttpsUpstream {
  url: string;
  requests: number;
  close: () => Promise<void>;
}

/** A stand-in HTTPS upstream on 127.0.0.1 answering 200 JSON to everything. */
async function startHttpsUpstream(pem: PemFiles): Promise<HttpsUpstream> {
  const state = { requests: 0 };
  const server: HttpsServer = createHttpsServer({ cert: pem.cert, key: pem.key }, (req, res) => {
    state.requests++;
    req.resume();
    const body = JSON.stringify({ projects: [], upstream: 'https-fake', path: req.url ?? '' });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  const port = await listenOnLoopback(server);
  return {
    url: `https://127.0.0.1:${port}`,
    get requests() {
      return state.requests;
    },
    close: () => closeNow(server),
  };
}

describe('upstream TLS is always verified', () => {
  async function callThrough(upstreamPem: PemFiles, env: Record<string, string>, txId: string) {
    const upstream = await startHttpsUpstream(upstreamPem);
    const h = await startHarness({ CE_API_URL: upstream.url, UPSTREAM_CONNECT_TIMEOUT_MS: '3000', ...env });
    try {
      const res = await get(`${h.url}/v2/projects`, { authorization: AUTH, 'x-transaction-id': txId });
      const event = await onlyEvent(h, txId);
      return { res, event, upstreamRequests: upstream.requests };
    } finally {
      await h.close();
      await upstream.close();
    }
  }

  function expectTlsFailure(res: Reply, event: AuditEvent, upstreamRequests: number): void {
    expect(res.status).toBe(502);
    const body = JSON.parse(res.text) as ErrorBody;
    expect(body.errors[0]?.code).toBe('upstream_tls_error');
    expect(upstreamRequests).toBe(0);
    expect(event.outcome).toBe('failure');
    expect(event.reason.reasonCode).toBe(502);
    expect(event.reason.reasonForFailure).toMatch(/certificate/i);
  }

  test('a CA-signed upstream without UPSTREAM_CA_FILE: 502 upstream_tls_error, audited', async () => {
    const { res, event, upstreamRequests } = await callThrough(certs.server, {}, 'up-tls-no-ca');
    expectTlsFailure(res, event, upstreamRequests);
    expect(event.reason.reasonForFailure).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/i);
  });

  test('the same upstream with UPSTREAM_CA_FILE=<ca>: proxied, 200', async () => {
    const { res, event, upstreamRequests } = await callThrough(certs.server, { UPSTREAM_CA_FILE: certs.ca.certFile }, 'up-tls-ca');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toMatchObject({ upstream: 'https-fake', path: '/v2/projects' });
    expect(upstreamRequests).toBe(1);
    expect(event.outcome).toBe('success');
    expect(event.reason.reasonCode).toBe(200);
  });

  test('a self-signed upstream certificate is refused even with UPSTREAM_CA_FILE', async () => {
    const { res, event, upstreamRequests } = await callThrough(certs.selfSigned, { UPSTREAM_CA_FILE: certs.ca.certFile }, 'up-tls-self');
    expectTlsFailure(res, event, upstreamRequests);
  });

  test('a CA-signed certificate for another name (example.com) is refused', async () => {
    const { res, event, upstreamRequests } = await callThrough(certs.wrongName, { UPSTREAM_CA_FILE: certs.ca.certFile }, 'up-tls-name');
    expectTlsFailure(res, event, upstreamRequests);
    expect(event.reason.reasonForFailure).toMatch(/ALTNAME|altnames|does not match/i);
  });

  test('a CA-signed certificate for client authentication only (no serverAuth) is refused', async () => {
    const { res, event, upstreamRequests } = await callThrough(
      certs.clientAuthOnly,
      { UPSTREAM_CA_FILE: certs.ca.certFile },
      'up-tls-purpose',
    );
    expect(res.status).toBe(502);
    expect(upstreamRequests).toBe(0);
    expect(event.outcome).toBe('failure');
    expect(event.reason.reasonCode).toBe(502);
    expect(event.reason.reasonForFailure).toMatch(/certificate purpose/i);
  });

  // Regression: only seven OpenSSL verification codes counted as TLS errors; INVALID_PURPOSE and others were
  // reported as upstream_protocol_error.
  test('that refusal is reported as upstream_tls_error, like every certificate verification failure', async () => {
    const { res, event, upstreamRequests } = await callThrough(
      certs.clientAuthOnly,
      { UPSTREAM_CA_FILE: certs.ca.certFile },
      'up-tls-purpose-code',
    );
    expectTlsFailure(res, event, upstreamRequests);
    expect(event.reason.reasonForFailure).toMatch(/TLS certificate of upstream/);
  });
});
