/**
 * Failed calls are audited as failures with the reason an auditor needs (reason.reasonForFailure), whether the
 * upstream refused them, was unreachable or too slow, or the client went away: through the standalone gateway and
 * through the audit middleware in front of createCodeEngineProxy (the same proxy, the same error bodies), and, for
 * what Code Engine itself answers and for clients going away, in front of http-proxy-middleware (whose own answers
 * to a failed upstream are its own: see middleware.test.ts).
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import type { AuditEvent } from '../../src/types';
import { FRONT_ENDS, startFrontEnd } from '../support/express-harness';
import { iamToken, USER_CLAIMS, type AuditHarness as Harness } from '../support/harness';

const AUTH = `Bearer ${iamToken(USER_CLAIMS)}`;

async function eventFor(h: Harness, txId: string): Promise<AuditEvent> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const mine = (await h.events()).filter((e) => e.transactionID === txId);
    if (mine.length > 0 || Date.now() > deadline) {
      expect(mine).toHaveLength(1);
      return mine[0] as AuditEvent;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each(FRONT_ENDS)('%s', (frontEnd) => {
  const startHarness = (env: Record<string, string> = {}): Promise<Harness> => startFrontEnd(frontEnd, env);

  describe('upstream refusals', () => {
    let h: Harness;
    let project: string;
    beforeAll(async () => {
      h = await startHarness({ ACTION_CATALOG: 'current' });
      project = (await request(h.url).post('/v2/projects').set('authorization', AUTH).send({ name: 'p' })).body.id as string;
      await request(h.url).post(`/v2/projects/${project}/apps`).set('authorization', AUTH).send({ name: 'dup' });
    });
    afterAll(() => h.close());

    test('404: reason from the Code Engine error body', async () => {
      const res = await request(h.url)
        .get(`/v2/projects/${project}/apps/missing`)
        .set('authorization', AUTH)
        .set('x-transaction-id', 'f-404');
      expect(res.status).toBe(404);
      const e = await eventFor(h, 'f-404');
      expect(e).toMatchObject({
        action: 'codeengine.application.read',
        outcome: 'failure',
        reason: { reasonCode: 404, reasonType: 'Not Found', reasonForFailure: 'Resource not found.' },
        severity: 'normal',
        message: 'Code Engine: read application missing -failure',
        target: { name: 'missing' },
      });
    });

    test('409: a conflicting create is a warning with the upstream message', async () => {
      const res = await request(h.url)
        .post(`/v2/projects/${project}/apps`)
        .set('authorization', AUTH)
        .set('x-transaction-id', 'f-409')
        .send({ name: 'dup' });
      expect(res.status).toBe(409);
      const e = await eventFor(h, 'f-409');
      expect(e.outcome).toBe('failure');
      expect(e.severity).toBe('warning');
      expect(e.reason.reasonCode).toBe(409);
      expect(e.reason.reasonForFailure).toMatch(/already exists/);
      expect(e.target.name).toBe('dup');
    });

    test('500 on a secret deletion stays critical (status never lowers severity)', async () => {
      const res = await request(h.url)
        .delete(`/v2/projects/${project}/secrets/s1`)
        .set('authorization', AUTH)
        .set('x-fake-status', '500')
        .set('x-transaction-id', 'f-500');
      expect(res.status).toBe(500);
      const e = await eventFor(h, 'f-500');
      expect(e).toMatchObject({
        action: 'codeengine.secret.delete',
        outcome: 'failure',
        severity: 'critical',
        reason: { reasonCode: 500, reasonType: 'Internal Server Error', reasonForFailure: 'Injected failure 500.' },
        message: 'Code Engine: delete secret s1 -failure',
      });
    });

    test('403 on a read raises severity to critical', async () => {
      await request(h.url)
        .get(`/v2/projects/${project}/apps`)
        .set('authorization', AUTH)
        .set('x-fake-status', '403')
        .set('x-transaction-id', 'f-403');
      const e = await eventFor(h, 'f-403');
      expect(e.severity).toBe('critical');
      expect(e.reason).toMatchObject({ reasonCode: 403, reasonType: 'Forbidden' });
    });

    test('Kubernetes Status message becomes the reason', async () => {
      const res = await request(h.url).get('/api/v1/namespaces/ns1/pods/nope').set('authorization', AUTH).set('x-transaction-id', 'f-k404');
      expect(res.status).toBe(404);
      const e = await eventFor(h, 'f-k404');
      expect(e.action).toBe('codeengine.pods.read');
      expect(e.reason.reasonForFailure).toBe('pods "nope" not found');
    });

    test('a client that disconnects before the answer yields an unknown outcome', async () => {
      await new Promise<void>((resolve) => {
        const req = httpRequest(`${h.url}/v2/projects/${project}/jobs`, {
          method: 'GET',
          headers: { authorization: AUTH, 'x-fake-delay-ms': '3000', 'x-transaction-id': 'f-abort' },
        });
        req.on('error', () => resolve());
        req.end();
        setTimeout(() => req.destroy(), 150);
      });
      const e = await eventFor(h, 'f-abort');
      expect(e).toMatchObject({
        action: 'codeengine.job.list',
        outcome: 'unknown',
        reason: { reasonCode: 499, reasonType: 'Client Closed Request' },
        message: 'Code Engine: list job p -failure'.replace(' p ', ` ${project} `),
      });
      expect(e.reason.reasonForFailure).toMatch(/client closed the connection/);
    });

    test('a client that disconnects mid-upload yields an unknown outcome', async () => {
      await new Promise<void>((resolve) => {
        const req = httpRequest(`${h.url}/v2/projects/${project}/config_maps`, {
          method: 'POST',
          headers: {
            authorization: AUTH,
            'content-type': 'application/json',
            'content-length': '100000',
            'x-transaction-id': 'f-upload-abort',
          },
        });
        req.on('error', () => resolve());
        req.write('{"name":"half-');
        setTimeout(() => req.destroy(), 150);
      });
      const e = await eventFor(h, 'f-upload-abort');
      expect(e.outcome).toBe('unknown');
      expect(e.action).toBe('codeengine.configmap.create');
    });
  });

  // The gateway's own answers to a failed upstream (the listener's and createCodeEngineProxy's, one ProxyCall).
  const gatewayProxy = (name: string, body: () => void): void => {
    if (frontEnd !== 'express+hpm') describe(name, body);
  };

  gatewayProxy('upstream unreachable or slow', () => {
    let h: Harness;
    let closedPort: number;
    beforeAll(async () => {
      const s = createServer();
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      closedPort = (s.address() as AddressInfo).port;
      await new Promise<void>((r) => s.close(() => r()));
      h = await startHarness({ CE_API_URL: `http://127.0.0.1:${closedPort}`, UPSTREAM_HEADERS_TIMEOUT_MS: '300' });
    });
    afterAll(() => h.close());

    test('connection refused: 502 in Code Engine error format, event with the network reason', async () => {
      const res = await request(h.url)
        .post('/v2/projects/p1/apps')
        .set('authorization', AUTH)
        .set('x-transaction-id', 'f-502')
        .send({ name: 'a1' });
      expect(res.status).toBe(502);
      expect(res.headers['content-type']).toMatch(/application\/json/);
      expect(res.body).toMatchObject({ errors: [{ code: 'upstream_unreachable' }], trace: 'f-502', status_code: 502 });
      expect(res.headers['x-transaction-id']).toBe('f-502');
      const e = await eventFor(h, 'f-502');
      expect(e).toMatchObject({ action: 'codeengine.appliction.create', outcome: 'failure', severity: 'warning', target: { name: 'a1' } });
      expect(e.reason.reasonCode).toBe(502);
      expect(e.reason.reasonForFailure).toMatch(new RegExp(`127\\.0\\.0\\.1:${closedPort} is unreachable.*ECONNREFUSED`));
    });

    test('no answer within UPSTREAM_HEADERS_TIMEOUT_MS: 504 and a timeout reason', async () => {
      // The kube upstream is the working fake; make it hang.
      const res = await request(h.url).get('/api/v1/namespaces/ns1/pods').set('x-fake-hang', '1').set('x-transaction-id', 'f-504');
      expect(res.status).toBe(504);
      expect(res.body.errors[0].code).toBe('upstream_timeout');
      const e = await eventFor(h, 'f-504');
      expect(e).toMatchObject({
        action: 'codeengine.pods.read',
        outcome: 'failure',
        reason: { reasonCode: 504, reasonType: 'Gateway Timeout' },
      });
      expect(e.reason.reasonForFailure).toMatch(/timed out/);
      expect(e.initiator.credential.type).toBe('public-access');
    });

    test('connection reset before any answer: 502', async () => {
      const res = await request(h.url).get('/api/v1/namespaces/ns1/configmaps').set('x-fake-reset', '1').set('x-transaction-id', 'f-reset');
      expect(res.status).toBe(502);
      const e = await eventFor(h, 'f-reset');
      expect(e.outcome).toBe('failure');
      expect(e.reason.reasonForFailure).toMatch(/ECONNRESET|closed|socket/i);
    });
  });

  gatewayProxy('upstream cuts a response body short', () => {
    let upstream: Server;
    let h: Harness;
    beforeAll(async () => {
      upstream = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write('{"items":[');
        setTimeout(() => res.socket?.destroy(), 50);
      });
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
      h = await startHarness({ CE_API_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` });
    });
    afterAll(async () => {
      await h.close();
      await new Promise<void>((r) => upstream.close(() => r()));
    });

    test('before any body byte reached the client: a 502 for the client, and the event says unknown', async () => {
      const res = await request(h.url).get('/v2/projects/p1/apps').set('x-transaction-id', 'f-cut');
      expect(res.status).toBe(502);
      expect(res.body.errors[0].code).toBe('upstream_aborted');
      const e = await eventFor(h, 'f-cut');
      // The upstream did answer 200: whether the action happened is unknown, not failed.
      expect(e).toMatchObject({ outcome: 'unknown', reason: { reasonCode: 200 } });
      expect(e.reason.reasonForFailure).toBeDefined();
    });
  });
});
