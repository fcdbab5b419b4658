/**
 * The admin listener: on loopback by default whatever HOST is, metrics behind ADMIN_TOKEN when it is set
 * (health and readiness always open for probes), the token never logged, and admin routes only ever on the
 * admin port: the same paths on the proxy port are Code Engine calls like any other, proxied and audited.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { loadConfig } from '../../src/config';
import type { AuditEvent } from '../../src/types';
import { iamToken, readJournal, startHarness, USER_CLAIMS, type Harness } from '../support/harness';

jest.setTimeout(10_000);

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await request(url, { method: 'GET', headers, signal: AbortSignal.timeout(5000) });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function onlyEvent(h: Harness, txId: string): Promise<AuditEvent> {
  const events = await h.eventsFor(txId);
  expect(events).toHaveLength(1);
  return events[0] as AuditEvent;
}

describe('admin listener address', () => {
  test('ADMIN_HOST defaults to 127.0.0.1 even when HOST is 0.0.0.0', () => {
    const config = loadConfig({ HOST: '0.0.0.0' });
    expect(config.host).toBe('0.0.0.0');
    expect(config.adminHost).toBe('127.0.0.1');
    expect(loadConfig({}).adminHost).toBe('127.0.0.1');
  });

  test('ADMIN_HOST, when set, is used as given', () => {
    expect(loadConfig({ HOST: '127.0.0.1', ADMIN_HOST: '0.0.0.0' }).adminHost).toBe('0.0.0.0');
  });

  test('a gateway with HOST=0.0.0.0 binds the admin listener to 127.0.0.1 only', async () => {
    const h = await startHarness({ HOST: '0.0.0.0', ADMIN_PORT: '0' });
    try {
      expect(h.gateway.proxyAddress.host).toBe('0.0.0.0');
      expect(h.gateway.adminAddress.host).toBe('127.0.0.1');
      expect(h.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await get(`${h.adminUrl}/healthz`)).status).toBe(200);
      // Without ADMIN_TOKEN the metrics are open.
      const metrics = await get(`${h.adminUrl}/metrics`);
      expect(metrics.status).toBe(200);
      expect(metrics.text).toContain('ce_audit_');
      // The proxy, on every address, is reached here through loopback.
      const proxied = await get(`http://127.0.0.1:${h.gateway.proxyAddress.port}/v2/projects`, { 'x-transaction-id': 'admin-any-host' });
      expect(proxied.status).toBe(200);
      await onlyEvent(h, 'admin-any-host');
    } finally {
      await h.close();
    }
  });
});

describe('ADMIN_TOKEN', () => {
  const ADMIN_TOKEN = `adm-${randomBytes(24).toString('hex')}`;
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ ADMIN_TOKEN });
  });
  afterAll(() => h.close());

  test('GET /metrics without a token: 401 with WWW-Authenticate', async () => {
    const res = await get(`${h.adminUrl}/metrics`);
    expect(res.status).toBe(401);
    expect(String(res.headers['www-authenticate'])).toMatch(/^Bearer\b/);
    expect(res.text).not.toContain('ce_audit_');
    expect(res.text).not.toContain(ADMIN_TOKEN);
  });

  test('GET /metrics with a wrong token, or the right one in another scheme: 401', async () => {
    for (const authorization of [
      'Bearer wrong-token',
      `Bearer ${ADMIN_TOKEN}x`,
      `Bearer ${ADMIN_TOKEN.slice(0, -1)}`,
      `Basic ${ADMIN_TOKEN}`,
      ADMIN_TOKEN,
      'Bearer ',
    ]) {
      const res = await get(`${h.adminUrl}/metrics`, { authorization });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBeDefined();
      expect(res.text).not.toContain('ce_audit_');
    }
  });

  test('GET /metrics with the right token: 200, Prometheus text', async () => {
    const res = await get(`${h.adminUrl}/metrics`, { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(res.status).toBe(200);
    expect(String(res.headers['content-type'])).toMatch(/^text\/plain/);
    expect(res.text).toContain('ce_audit_events_recorded_total');
    expect(res.text).not.toContain(ADMIN_TOKEN);
  });

  test('/healthz and /readyz stay open without the token', async () => {
    const health = await get(`${h.adminUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.text)).toEqual({ status: 'ok' });
    const ready = await get(`${h.adminUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toMatchObject({ status: 'ready', problems: [] });
  });

  test('the admin port serves only its routes (404 elsewhere, even with the token)', async () => {
    const res = await get(`${h.adminUrl}/v2/projects`, { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(res.status).toBe(404);
    expect(h.upstream.requests.some((r) => r.headers.authorization === `Bearer ${ADMIN_TOKEN}`)).toBe(false);
  });

  test('GET /metrics on the proxy port is proxied to Code Engine (404 there) and audited', async () => {
    const before = h.upstream.requests.length;
    const res = await get(`${h.url}/metrics`, { authorization: `Bearer ${iamToken(USER_CLAIMS)}`, 'x-transaction-id': 'proxy-metrics' });
    expect(res.status).toBe(404);
    expect(res.text).not.toContain('ce_audit_');
    expect(h.upstream.requests.slice(before).map((r) => r.path)).toContain('/metrics');
    const e = await onlyEvent(h, 'proxy-metrics');
    expect(e).toMatchObject({
      outcome: 'failure',
      reason: { reasonCode: 404 },
      requestData: { method: 'GET', path: '/metrics' },
      initiator: { id: USER_CLAIMS.iam_id },
    });
  });

  test('GET /healthz on the proxy port is proxied too, with the admin token sent as a bearer', async () => {
    const res = await get(`${h.url}/healthz`, { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-transaction-id': 'proxy-healthz' });
    expect(res.status).toBe(404);
    expect(res.text).not.toContain('"status":"ok"');
    const e = await onlyEvent(h, 'proxy-healthz');
    expect(e.requestData).toMatchObject({ method: 'GET', path: '/healthz' });
    expect(e.reason.reasonCode).toBe(404);
  });

  test('the admin token never appears in the logs or the journal', async () => {
    // A request the admin app does log (unknown path), and a proxied call, each carrying the token.
    expect((await get(`${h.adminUrl}/nothing-here`, { authorization: `Bearer ${ADMIN_TOKEN}` })).status).toBe(404);
    await get(`${h.url}/v2/projects`, { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-transaction-id': 'admin-token-proxied' });
    await onlyEvent(h, 'admin-token-proxied');
    const { raw } = await readJournal(h.journalDir);
    expect(raw.length).toBeGreaterThan(0);
    expect(raw).not.toContain(ADMIN_TOKEN);
    const logs = h.logs();
    expect(logs.length).toBeGreaterThan(0);
    expect(logs).not.toContain(ADMIN_TOKEN);
  });
});
