/**
 * The audit middleware on real Express 5 apps (supertest), in front of http-proxy-middleware 3 with a keep-alive
 * agent and in front of createCodeEngineProxy, against the fake Code Engine: transaction ids both ways, mount
 * paths, the app's other routes, refusals before the next handler, bounded capture, one event per call recorded
 * before the response's last byte, streaming, and what happens when the client goes away.
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import type express from 'express';
import request from 'supertest';
import type { AuditEvent } from '../../src/types';
import { metricValue, startExpressHarness, type ExpressHarness, type ProxyKind } from '../support/express-harness';
import { iamToken, USER_CLAIMS } from '../support/harness';
import { fireCalls, until } from '../support/load';

const AUTH = `Bearer ${iamToken(USER_CLAIMS)}`;
const ACCOUNT = USER_CLAIMS.account.bss;

async function one(h: ExpressHarness, txId: string): Promise<AuditEvent> {
  const events = await h.eventsFor(txId);
  expect(events).toHaveLength(1);
  return events[0] as AuditEvent;
}

async function recorded(h: ExpressHarness): Promise<number> {
  return metricValue(await h.metrics(), 'ce_audit_events_recorded_total');
}

describe.each(['hpm', 'ce-proxy'] as const)('in front of %s', (proxy: ProxyKind) => {
  let h: ExpressHarness;
  let project: string;
  beforeAll(async () => {
    h = await startExpressHarness({ ACTION_CATALOG: 'current', CAPTURE_MAX_BYTES: '4096' }, { proxy, mount: '/ce' });
    const res = await request(h.url).post('/v2/projects').set('authorization', AUTH).set('x-transaction-id', 'mw-p').send({ name: 'mw' });
    expect(res.status).toBe(202);
    project = res.body.id as string;
  });
  afterAll(() => h.close());

  test('a transaction id is assigned, echoed to the client and sent upstream as X-Correlation-Id', async () => {
    const res = await request(h.url).get(`/v2/projects/${project}`).set('authorization', AUTH);
    expect(res.status).toBe(200);
    const txId = res.headers['x-transaction-id'] as string;
    expect(txId).toMatch(/^[0-9a-f-]{36}$/);
    const upstream = h.upstream.requests.filter((r) => r.headers['x-correlation-id'] === txId);
    expect(upstream.map((r) => `${r.method} ${r.path}`)).toEqual([`GET /v2/projects/${project}`]);
    const e = await one(h, txId);
    expect(e).toMatchObject({
      action: 'codeengine.project.read',
      outcome: 'success',
      correlationId: txId,
      target: { id: `crn:v1:bluemix:public:codeengine:us-south:a/${ACCOUNT}:${project}::`, name: 'mw' },
      initiator: { id: USER_CLAIMS.iam_id, credential: { type: 'apikey', verified: false } },
    });
  });

  test("the caller's transaction id is kept, and replaces the X-Correlation-Id it sent", async () => {
    const res = await request(h.url)
      .get('/v2/projects')
      .set('x-request-id', 'caller-chose-this')
      .set('x-correlation-id', 'caller-chose-this');
    expect(res.headers['x-transaction-id']).toBe('caller-chose-this');
    const forwarded = h.upstream.requests.filter((r) => r.headers['x-correlation-id'] === 'caller-chose-this');
    expect(forwarded).toHaveLength(1);
    expect(forwarded[0]?.rawHeaders.filter((v, i) => i % 2 === 0 && v.toLowerCase() === 'x-correlation-id')).toHaveLength(1);
    expect((await one(h, 'caller-chose-this')).transactionID).toBe('caller-chose-this');
  });

  test('the event names the path below the mount path, as the upstream received it', async () => {
    const res = await request(h.url).get(`//v2/projects/${project}/apps/./../apps`).set('x-transaction-id', 'mw-mount');
    expect(res.status).toBe(200);
    const e = await one(h, 'mw-mount');
    expect(e.requestData).toMatchObject({ method: 'GET', path: `/v2/projects/${project}/apps` });
    expect(e.action).toBe('codeengine.application.list');
    const upstream = h.upstream.requests.filter((r) => r.headers['x-correlation-id'] === 'mw-mount');
    expect(upstream.map((r) => r.path)).toEqual([`/v2/projects/${project}/apps`]);
  });

  test("the app's other routes pass untouched: no transaction id, no event, nothing forwarded", async () => {
    const before = await recorded(h);
    const calls = h.upstream.requests.length;
    const health = await request(h.appUrl).get('/app/health');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ ok: true });
    expect(health.headers['x-transaction-id']).toBeUndefined();
    const other = await request(h.appUrl).get('/v2/projects');
    expect(other.status).toBe(404);
    expect(other.body).toEqual({ app: 'no such route' });
    expect(other.headers['x-transaction-id']).toBeUndefined();
    expect(await recorded(h)).toBe(before);
    expect(h.upstream.requests.length).toBe(calls);
  });

  test('refusals happen before the next handler: nothing forwarded, the event says why', async () => {
    const calls = h.upstream.requests.length;
    const res = await request(h.url)
      .post(`/v2/projects/${project}/apps`)
      .set('x-http-method-override', 'DELETE')
      .set('x-transaction-id', 'mw-override')
      .send({ name: 'x' });
    expect(res.status).toBe(400);
    expect(res.headers['x-transaction-id']).toBe('mw-override');
    expect(res.body).toMatchObject({ errors: [{ code: 'bad_request' }], transaction_id: 'mw-override' });
    const matrix = await request(h.url).get(`/v2/projects/${project};x=y/apps`).set('x-transaction-id', 'mw-matrix');
    expect(matrix.status).toBe(400);
    expect(h.upstream.requests.length).toBe(calls);
    expect(await one(h, 'mw-override')).toMatchObject({
      outcome: 'failure',
      reason: { reasonCode: 400 },
      action: 'codeengine.application.create',
    });
    expect((await one(h, 'mw-matrix')).reason.reasonForFailure).toMatch(/matrix parameters/);
  });

  test('bodies stream whole while the event keeps a bounded prefix', async () => {
    const big = { name: 'big-cm', data: { blob: 'x'.repeat(50_000) } };
    const res = await request(h.url).post(`/v2/projects/${project}/config_maps`).set('x-transaction-id', 'mw-big').send(big);
    expect(res.status).toBe(201);
    const upstream = h.upstream.requests.find((r) => r.headers['x-correlation-id'] === 'mw-big');
    expect(upstream?.bodyBytes).toBe(Buffer.byteLength(JSON.stringify(big)));
    const e = await one(h, 'mw-big');
    expect(e.action).toBe('codeengine.configmap.create');
    // Larger than CAPTURE_MAX_BYTES: described, never quoted.
    expect(e.requestData.body).toBeUndefined();
    expect(e.requestData.bodyOmitted).toBeDefined();
    expect(JSON.stringify(e)).not.toContain('xxxxxxxxxx');
  });

  test("each call's event is durable before the client has the whole response", async () => {
    for (let i = 0; i < 10; i++) {
      const before = await recorded(h);
      const res = await request(h.url).get(`/v2/projects/${project}/apps`).set('x-transaction-id', `mw-durable-${i}`);
      expect(res.status).toBe(200);
      expect(await recorded(h)).toBe(before + 1);
    }
    const download = await request(h.url).get('/v2/_download?bytes=3000000').set('x-transaction-id', 'mw-download');
    expect(download.status).toBe(200);
    expect(Number(download.headers['content-length'] ?? download.body.length)).toBe(3_000_000);
    expect((await one(h, 'mw-download')).outcome).toBe('success');
  });

  test('one event per upstream request under concurrent keep-alive load', async () => {
    const calls = Array.from({ length: 300 }, (_, i) => ({
      method: i % 3 === 0 ? 'POST' : 'GET',
      path: `/ce/v2/projects/${project}/${i % 3 === 0 ? 'config_maps' : 'apps'}`,
      body: i % 3 === 0 ? JSON.stringify({ name: `load-${i}`, data: { k: 'v' } }) : undefined,
      transactionId: `mw-load-${i}`,
    }));
    const results = await fireCalls(h.appUrl, calls, { concurrency: 32 });
    expect(results.filter((r) => !r.complete)).toEqual([]);
    const events = await h.waitForEvents(0);
    const byTx = new Map<string, number>();
    for (const e of events) byTx.set(e.transactionID, (byTx.get(e.transactionID) ?? 0) + 1);
    for (const call of calls) {
      const upstream = h.upstream.requests.filter((r) => r.headers['x-correlation-id'] === call.transactionId);
      expect({ tx: call.transactionId, upstream: upstream.length, events: byTx.get(call.transactionId) }).toEqual({
        tx: call.transactionId,
        upstream: 1,
        events: 1,
      });
    }
  });

  test('a client that goes away before the answer leaves one event with an unknown outcome', async () => {
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${h.url}/v2/projects/${project}/jobs`, {
        headers: { 'x-fake-delay-ms': '2000', 'x-transaction-id': 'mw-gone' },
      });
      req.on('error', () => resolve());
      req.end();
      setTimeout(() => req.destroy(), 150);
    });
    const e = await one(h, 'mw-gone');
    expect(e).toMatchObject({ action: 'codeengine.job.list', outcome: 'unknown', reason: { reasonCode: 499 } });
  });

  test('a chunked body over MAX_BODY_BYTES is refused with 413, and never reaches Code Engine whole', async () => {
    const small = await startExpressHarness({ MAX_BODY_BYTES: '10000' }, { proxy });
    try {
      const status = await new Promise<number>((resolve) => {
        const req = httpRequest(`${small.url}/v2/projects/p1/config_maps`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'x-transaction-id': 'mw-413' },
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', () => resolve(0));
        req.write(`{"name":"too-big","data":{"k":"${'y'.repeat(30_000)}`);
        setTimeout(() => req.end('"}}'), 100);
      });
      expect(status).toBe(413);
      const e = await one(small, 'mw-413');
      expect(e).toMatchObject({ outcome: 'failure', reason: { reasonCode: 413 }, action: 'codeengine.configmaps.create' });
      const upstream = small.upstream.requests.filter((r) => r.headers['x-correlation-id'] === 'mw-413');
      for (const r of upstream) expect(r.bodyBytes).toBeLessThanOrEqual(10_000);
    } finally {
      await small.close();
    }
  });
});

describe('behind the audit, any handler', () => {
  let h: ExpressHarness;
  let handled: string[];
  let releaseWatch: (() => void) | undefined;
  beforeAll(async () => {
    handled = [];
    h = await startExpressHarness(
      { ACTION_CATALOG: 'current' },
      {
        proxy: 'hpm',
        build: (app: express.Express, audit) => {
          app.use('/ce', audit, (req, res, next) => {
            handled.push(req.url);
            if (req.url.startsWith('/v2/projects/teapot')) {
              res.status(418).json({ errors: [{ code: 'teapot', message: 'I am a teapot, not Code Engine.' }] });
            } else if (req.url.includes('watch=true')) {
              res.writeHead(200, { 'content-type': 'application/json' });
              res.write('{"type":"ADDED"}\n');
              releaseWatch = () => res.end('{"type":"DELETED"}\n');
            } else if (req.url.startsWith('/v2/projects/express-error')) {
              next(new Error('boom'));
            } else {
              res.send('plain text, not JSON');
            }
          });
        },
      },
    );
  });
  afterAll(() => h.close());

  test("an answer of the app's own is audited with its status and reason", async () => {
    const res = await request(h.url).get('/v2/projects/teapot').set('x-transaction-id', 'own-418');
    expect(res.status).toBe(418);
    expect(res.headers['x-transaction-id']).toBe('own-418');
    expect(await one(h, 'own-418')).toMatchObject({
      outcome: 'failure',
      reason: { reasonCode: 418, reasonForFailure: 'I am a teapot, not Code Engine.' },
    });
  });

  test("Express's own error handler is audited too (the next handler failed)", async () => {
    const res = await request(h.url).get('/v2/projects/express-error').set('x-transaction-id', 'own-500');
    expect(res.status).toBe(500);
    expect(res.headers['x-transaction-id']).toBe('own-500');
    expect((await one(h, 'own-500')).reason.reasonCode).toBe(500);
  });

  test('a refusal never runs the next handler', async () => {
    handled.length = 0;
    const res = await request(h.url).get('/v2/projects/x/apps').set('x-method-override', 'DELETE').set('x-transaction-id', 'own-refused');
    expect(res.status).toBe(400);
    expect(handled).toEqual([]);
    expect((await one(h, 'own-refused')).reason.reasonCode).toBe(400);
  });

  test('a watch is recorded when it starts; its end waits for nothing more', async () => {
    const chunks: string[] = [];
    let ended = false;
    await new Promise<void>((resolve, reject) => {
      httpRequest(`${h.url}/api/v1/namespaces/ns1/pods?watch=true`, { headers: { 'x-transaction-id': 'own-watch' } }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          chunks.push(c);
          resolve();
        });
        res.on('end', () => (ended = true));
      })
        .on('error', reject)
        .end();
    });
    expect(chunks.join('')).toContain('ADDED');
    // Still open, and already audited.
    const e = await one(h, 'own-watch');
    expect(e).toMatchObject({ action: 'codeengine.pods.list', outcome: 'success', reason: { reasonCode: 200 } });
    expect(e.responseData).toBeUndefined();
    expect(ended).toBe(false);
    releaseWatch?.();
    expect(await until(() => ended, 3000)).toBe(true);
    expect(await h.eventsFor('own-watch')).toHaveLength(1);
  });

  test('a response that is not JSON is described, never quoted', async () => {
    await request(h.url).post('/v2/projects/p/config_maps').set('x-transaction-id', 'own-text').send({ name: 'n' });
    const e = await one(h, 'own-text');
    expect(JSON.stringify(e)).not.toContain('plain text');
  });
});

describe('the spool full policy applies before the next handler', () => {
  let h: ExpressHarness;
  beforeAll(async () => {
    // Nothing delivers (a LogDNA sink nobody listens for), so the spool fills.
    h = await startExpressHarness(
      {
        SPOOL_MAX_BYTES: String(1024 * 1024),
        SPOOL_SEGMENT_BYTES: String(64 * 1024),
        AT_SINK: 'logdna',
        AT_LOGDNA_URL: 'http://127.0.0.1:1/logs/ingest',
        AT_INGESTION_KEY: 'nobody-listens-0123456789',
      },
      { proxy: 'ce-proxy' },
    );
  });
  afterAll(() => h.close());

  test('writes get 503 audit_spool_full and reach nothing; reads pass; readiness says why', async () => {
    let refused: request.Response | undefined;
    for (let i = 0; i < 1000 && !refused; i++) {
      const res = await request(h.url)
        .post('/v2/projects')
        .set('x-transaction-id', `full-${i}`)
        .send({ name: `p-${i}`, pad: 'z'.repeat(8000) });
      if (res.status === 503) refused = res;
      else expect(res.status).toBe(202);
    }
    expect(refused?.body.errors[0]).toMatchObject({ code: 'audit_spool_full' });
    const refusedTx = refused?.headers['x-transaction-id'] as string;
    expect(h.upstream.requests.some((r) => r.headers['x-correlation-id'] === refusedTx)).toBe(false);
    expect((await request(h.url).get('/v2/projects')).status).toBe(200);
    expect((await h.audit.problems()).join(' ')).toMatch(/undelivered events/);
    expect(metricValue(await h.metrics(), 'ce_audit_calls_refused_total', 'reason="spool_full"')).toBeGreaterThanOrEqual(1);
  });
});

describe('createCodeEngineProxy without the audit in front', () => {
  let h: ExpressHarness;
  beforeAll(async () => {
    h = await startExpressHarness(
      {},
      {
        proxy: 'ce-proxy',
        build: (app, audit, forward) => {
          app.use('/ce', audit, forward);
          // A misconfiguration: the proxy reachable on a path the audit does not cover.
          app.use('/unaudited', forward);
        },
      },
    );
  });
  afterAll(() => h.close());

  test('refuses to forward: 500 audit_middleware_missing, and Code Engine never sees the call', async () => {
    const calls = h.upstream.requests.length;
    const res = await request(h.appUrl).delete('/unaudited/v2/projects/p1');
    expect(res.status).toBe(500);
    expect(res.body.errors[0]).toMatchObject({ code: 'audit_middleware_missing' });
    expect(res.body.errors[0].message).toMatch(/mount createAuditMiddleware in front of createCodeEngineProxy/);
    expect(h.upstream.requests.length).toBe(calls);
  });
});

describe('close()', () => {
  test('waits for calls in flight, then refuses new calls with 503 and keeps undelivered events in the spool', async () => {
    const h = await startExpressHarness({ DRAIN_TIMEOUT_MS: '5000' }, { proxy: 'hpm' });
    try {
      const slow = request(h.url)
        .get('/v2/projects')
        .set('x-fake-delay-ms', '300')
        .set('x-transaction-id', 'close-slow')
        .then((r) => r);
      // Under way: Code Engine has it.
      expect(await until(() => h.upstream.requests.some((r) => r.headers['x-correlation-id'] === 'close-slow'), 5000, 5)).toBe(true);
      const closed = h.audit.close();
      const res = await slow;
      expect(res.status).toBe(200);
      await closed;
      const after = await request(h.url).get('/v2/projects');
      expect(after.status).toBe(503);
      expect(after.body.errors[0]).toMatchObject({ code: 'audit_closed' });
      expect(after.body.errors[0].message).toMatch(/closed/);
    } finally {
      await h.close();
    }
  });

  test('a raw socket to a closed audit still gets an answer, not a hang', async () => {
    const h = await startExpressHarness({}, { proxy: 'ce-proxy' });
    try {
      await h.audit.close();
      const port = Number(new URL(h.appUrl).port);
      const text = await new Promise<string>((resolve) => {
        let got = '';
        const s = connect(port, '127.0.0.1', () => s.write('GET /ce/v2/projects HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
        s.on('data', (c: Buffer) => (got += c.toString('latin1')));
        s.on('close', () => resolve(got));
      });
      expect(text).toMatch(/^HTTP\/1\.1 503 /);
    } finally {
      await h.close();
    }
  });
});

describe('outside the usual Express shape', () => {
  test('a plain node:http server calling the middleware itself: same events, same hold-back', async () => {
    const h = await startExpressHarness(
      {},
      {
        proxy: 'ce-proxy',
        build: (app, audit, forward) => {
          // The app is bypassed: a bare handler chain, the way a Connect-style server would call it.
          app.use((_req, _res, next) => next());
          void audit;
          void forward;
        },
      },
    );
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      h.audit(req, res, (err?: unknown) => {
        if (err) {
          res.statusCode = 500;
          res.end();
          return;
        }
        (h.proxy as NonNullable<typeof h.proxy>)(req, res, () => undefined);
      });
    });
    const { listenOnLoopback, closeNow } = await import('../support/listen');
    const url = `http://127.0.0.1:${await listenOnLoopback(server)}`;
    try {
      for (let i = 0; i < 5; i++) {
        const before = await recorded(h);
        const res = await request(url).get('/v2/projects').set('x-transaction-id', `plain-${i}`);
        expect(res.status).toBe(200);
        expect(res.headers['x-transaction-id']).toBe(`plain-${i}`);
        expect(await recorded(h)).toBe(before + 1);
      }
      expect((await one(h, 'plain-4')).action).toBe('codeengine.project.read');
    } finally {
      await closeNow(server);
      await h.close();
    }
  });

  test('a handler that swaps the response prototype away still leaves one event, recorded after, and a warning', async () => {
    const { ServerResponse } = await import('node:http');
    const h = await startExpressHarness(
      {},
      {
        proxy: 'hpm',
        build: (app, audit) => {
          app.use('/ce', audit, (_req, res) => {
            Object.setPrototypeOf(res, ServerResponse.prototype);
            res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
          });
        },
      },
    );
    try {
      expect((await request(h.url).get('/v2/projects').set('x-transaction-id', 'swapped')).status).toBe(200);
      expect(await one(h, 'swapped')).toMatchObject({ outcome: 'success', reason: { reasonCode: 200 } });
      expect(h.logs()).toMatch(/ended without passing through the audit middleware/);
    } finally {
      await h.close();
    }
  });

  test('an Express sub-app behind the audit: its answers pass through the audit too, event first', async () => {
    const { default: expressModule } = await import('express');
    const h = await startExpressHarness(
      {},
      {
        proxy: 'hpm',
        build: (app, audit) => {
          const sub = expressModule();
          sub.get('/v2/projects/:id', (req, res) => {
            res.status(404).json({ errors: [{ code: 'not_found', message: `No project ${req.params.id}.` }] });
          });
          app.use('/ce', audit, sub);
        },
      },
    );
    try {
      // A mounted sub-app swaps the response's prototype for its own, which Express chains to the app's (tapped).
      const before = await recorded(h);
      const res = await request(h.url).get('/v2/projects/p404').set('x-transaction-id', 'sub-app');
      expect(res.status).toBe(404);
      expect(await recorded(h)).toBe(before + 1);
      const e = await one(h, 'sub-app');
      expect(e).toMatchObject({ outcome: 'failure', reason: { reasonCode: 404, reasonForFailure: 'No project p404.' } });
      expect(h.logs()).not.toMatch(/ended without passing through the audit middleware/);
    } finally {
      await h.close();
    }
  });
});
