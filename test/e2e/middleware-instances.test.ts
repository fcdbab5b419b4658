/**
 * Several audits in one process, side by side: two regions in one app, two apps, and the standalone gateway
 * beside them. Each has its own spool, journal, delivery and metrics (never prom-client's global registry), and a
 * bad configuration or a shared spool is a clear error, not a silent mix-up.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import express from 'express';
import { register } from 'prom-client';
import request from 'supertest';
import { createAuditMiddleware, createCodeEngineProxy, GatewayError, loadConfig, startGateway } from '../../src/index';
import type { AuditMiddleware, CodeEngineProxy, GatewaySettings } from '../../src/index';
import { createLogger } from '../../src/log';
import { metricValue, startExpressHarness } from '../support/express-harness';
import { startFakeCodeEngine, type FakeCodeEngine } from '../support/fake-code-engine';
import { readJournal } from '../support/harness';
import { closeNow, listenOnLoopback } from '../support/listen';
import { until } from '../support/load';

let dir: string;
let upstream: FakeCodeEngine;
const quiet = createLogger('silent');

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ce-audit-instances-'));
  upstream = await startFakeCodeEngine();
});
afterAll(async () => {
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
});

function settings(name: string, region: string): GatewaySettings {
  return {
    CE_REGION: region,
    CE_API_URL: upstream.url,
    CE_KUBE_API_URL: upstream.url,
    AT_FILE_DIR: path.join(dir, name, 'audit'),
    SPOOL_DIR: path.join(dir, name, 'spool'),
    BATCH_MAX_WAIT_MS: '20',
    CE_ACCOUNT_ID: 'acc0123456789abcdef0123456789abcd',
  };
}

test('two regions in one app: each mount audits to its own region, spool, journal and metrics', async () => {
  const us = await createAuditMiddleware(settings('us', 'us-south'), { logger: quiet });
  const eu = await createAuditMiddleware(settings('eu', 'eu-de'), { logger: quiet });
  const usProxy = createCodeEngineProxy(us.config);
  const euProxy = createCodeEngineProxy(eu.config);
  const app = express();
  app.use('/us', us, usProxy);
  app.use('/eu', eu, euProxy);
  const server = createServer(app);
  const url = `http://127.0.0.1:${await listenOnLoopback(server)}`;
  try {
    for (let i = 0; i < 3; i++) expect((await request(url).get('/us/v2/projects').set('x-transaction-id', `us-${i}`)).status).toBe(200);
    expect((await request(url).post('/eu/v2/projects').set('x-transaction-id', 'eu-0').send({ name: 'in-frankfurt' })).status).toBe(202);

    expect(metricValue(await us.metrics(), 'ce_audit_events_recorded_total', 'region="us-south"')).toBe(3);
    expect(metricValue(await us.metrics(), 'ce_audit_events_recorded_total')).toBe(3);
    expect(metricValue(await eu.metrics(), 'ce_audit_events_recorded_total', 'region="eu-de"')).toBe(1);
    expect(metricValue(await eu.metrics(), 'ce_audit_events_recorded_total')).toBe(1);

    const journal = async (name: string): Promise<string[]> =>
      (await readJournal(path.join(dir, name, 'audit'))).events.map((e) => e.transactionID);
    expect(await until(async () => (await journal('us')).length === 3 && (await journal('eu')).length === 1, 5000)).toBe(true);
    expect((await journal('us')).sort()).toEqual(['us-0', 'us-1', 'us-2']);
    const [euEvent] = (await readJournal(path.join(dir, 'eu', 'audit'))).events;
    expect(euEvent?.target.id).toMatch(/^crn:v1:bluemix:public:codeengine:eu-de:/);
    expect(euEvent?.target.name).toBe('in-frankfurt');
    // Nothing in prom-client's global registry: an app's own metrics never collide with the audit's.
    expect((await register.getMetricsAsJSON()).filter((m) => m.name.startsWith('ce_audit_'))).toEqual([]);
  } finally {
    await closeNow(server);
    await Promise.all([usProxy.close(), euProxy.close()]);
    await Promise.all([us.close(), eu.close()]);
  }
});

test('two apps and the standalone gateway in one process, each counting only its own calls', async () => {
  const a = await startExpressHarness({}, { proxy: 'hpm' });
  const b = await startExpressHarness({}, { proxy: 'ce-proxy' });
  const gateway = await startGateway({ ...settings('gw', 'us-south'), PORT: '0', ADMIN_PORT: '0' }, { logger: quiet });
  try {
    await request(a.url).get('/v2/projects').set('x-transaction-id', 'app-a');
    for (let i = 0; i < 2; i++) await request(b.url).get('/v2/projects').set('x-transaction-id', `app-b-${i}`);
    for (let i = 0; i < 4; i++) await request(gateway.proxyAddress.url).get('/v2/projects');
    expect(metricValue(await a.metrics(), 'ce_audit_events_recorded_total')).toBe(1);
    expect(metricValue(await b.metrics(), 'ce_audit_events_recorded_total')).toBe(2);
    const gatewayMetrics = await (await fetch(`${gateway.adminAddress.url}/metrics`)).text();
    expect(metricValue(gatewayMetrics, 'ce_audit_events_recorded_total')).toBe(4);
    // The standalone gateway reports its process; an embedded audit leaves that to the app.
    expect(gatewayMetrics).toContain('ce_audit_process_cpu_user_seconds_total');
    expect(await a.metrics()).not.toContain('ce_audit_process_cpu_user_seconds_total');
    expect((await a.events()).map((e) => e.transactionID)).toEqual(['app-a']);
  } finally {
    await gateway.stop();
    await a.close();
    await b.close();
  }
});

describe('clear errors', () => {
  test('a second instance on the same SPOOL_DIR is refused until the first is closed', async () => {
    const first = await createAuditMiddleware(settings('shared', 'us-south'), { logger: quiet });
    const second = createAuditMiddleware(settings('shared', 'us-south'), { logger: quiet });
    await expect(second).rejects.toThrow(GatewayError);
    await expect(second).rejects.toThrow(
      /SPOOL_DIR=".*shared\/spool" is already used by another gateway or audit middleware in this process/,
    );
    await expect(startGateway({ ...settings('shared', 'us-south'), PORT: '0', ADMIN_PORT: '0' }, { logger: quiet })).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
    });
    await first.close();
    const again = await createAuditMiddleware(settings('shared', 'us-south'), { logger: quiet });
    await again.close();
  });

  test('bad settings are named, with what is accepted, as at start-up', async () => {
    await expect(createAuditMiddleware({ ...settings('bad', 'us-south'), CE_REGION: 'mars', SPOOL_FULL_POLICY: 'hope' })).rejects.toThrow(
      /CE_REGION="mars" is not valid: expected one of us-south.*SPOOL_FULL_POLICY="hope" is not valid: expected one of reject-writes, reject-all, drop-oldest/,
    );
    expect(() => loadConfig({ PORT: 8080 } as unknown as GatewaySettings)).toThrow(
      /settings are strings, as in the environment: PORT is a number/,
    );
    expect(() => createCodeEngineProxy(null as unknown as GatewaySettings)).toThrow(/expected the settings as a record of strings/);
    // The same message the command prints and exits with.
    expect(() => loadConfig({ AT_SINK: 'logdna' })).toThrow(/AT_INGESTION_KEY_US_SOUTH is missing/);
  });

  test('attach with a bad path or something that is not the proxy', async () => {
    const audit = await createAuditMiddleware(settings('attach', 'us-south'), { logger: quiet });
    const server = createServer();
    try {
      expect(() => audit.attach(server, { path: 'ce/' })).toThrow(/path="ce\/" is not valid/);
      expect(() => audit.attach(server, { proxy: (() => undefined) as unknown as CodeEngineProxy })).toThrow(
        /proxy must be a handler made by createCodeEngineProxy/,
      );
      const detach = audit.attach(server, { path: '/ce' });
      expect(() => audit.attach(createServer(), { path: '/other' })).toThrow(/attached under \/ce already/);
      detach();
      expect(server.listenerCount('clientError')).toBe(0);
    } finally {
      await audit.close();
    }
  });

  test('a proxy for other regions than the audit refuses the call it cannot forward', async () => {
    const audit: AuditMiddleware = await createAuditMiddleware(settings('eu-only', 'eu-de'), { logger: quiet });
    const proxy = createCodeEngineProxy(settings('us-only', 'us-south'));
    const app = express();
    app.use(audit, proxy);
    const server = createServer(app);
    const url = `http://127.0.0.1:${await listenOnLoopback(server)}`;
    try {
      const res = await request(url).get('/v2/projects');
      expect(res.status).toBe(500);
      expect(res.body.errors[0].message).toMatch(/does not front region eu-de/);
    } finally {
      await closeNow(server);
      await proxy.close();
      await audit.close();
    }
  });
});
