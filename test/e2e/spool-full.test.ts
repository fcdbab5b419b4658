/**
 * A bounded spool: when Activity Tracker cannot keep up and the spool reaches SPOOL_MAX_BYTES, mutating calls
 * are refused (503) rather than allowed to happen unaudited; reads pass; what was spooled stays intact and is
 * delivered once the receiver is back, after which calls succeed again.
 */
import request from 'supertest';
import type { AuditEvent } from '../../src/types';
import { logdnaSinkEnv, useReceiverAndGateway } from '../support/delivery';
import { until } from '../support/load';

const KEY = 'spool-full-ingestion-key-0b1c2d';

const ctx = useReceiverAndGateway({ logdnaKeys: { 'us-south': KEY } }, (receiver) => ({
  ...logdnaSinkEnv(receiver, KEY),
  SPOOL_MAX_BYTES: String(1024 * 1024),
  SPOOL_SEGMENT_BYTES: String(64 * 1024),
  BATCH_MAX_WAIT_MS: '20',
  RETRY_BASE_MS: '100',
  RETRY_MAX_MS: '300',
  ACTION_CATALOG: 'current',
}));

test('full spool: 503 for writes, reads pass, nothing spooled is lost, writes succeed again after the drain', async () => {
  const { receiver, h } = ctx;
  receiver.behave('*', { mode: 'down' });
  const project = (await request(h.url).post('/v2/projects').send({ name: 'full' })).body.id as string;
  const data = { payload: 'x'.repeat(8000) };
  const accepted: string[] = [];
  let refused: request.Response | undefined;
  for (let i = 0; i < 1000 && !refused; i++) {
    const res = await request(h.url)
      .post(`/v2/projects/${project}/config_maps`)
      .set('x-transaction-id', `cm-${i}`)
      .send({ name: `cm-${i}`, data });
    if (res.status === 503) refused = res;
    else {
      expect(res.status).toBe(201);
      accepted.push(`cm-${i}`);
    }
  }
  expect(refused).toBeDefined();
  expect(refused?.body.errors[0]).toMatchObject({ code: 'audit_spool_full' });
  expect(refused?.body.errors[0].message).toMatch(/audit spool is full .* refused rather than left unaudited/);
  expect(accepted.length).toBeGreaterThan(50);
  // The refused create never reached Code Engine.
  const refusedName = `cm-${accepted.length}`;
  expect(h.upstream.requests.some((r) => r.method === 'POST' && r.body.toString().includes(`"${refusedName}"`))).toBe(false);

  // Reads still pass; deletes are refused too.
  expect((await request(h.url).get(`/v2/projects/${project}/config_maps/cm-0`)).status).toBe(200);
  expect((await request(h.url).delete(`/v2/projects/${project}/config_maps/cm-0`)).status).toBe(503);
  expect((await fetch(`${h.adminUrl}/readyz`)).status).toBe(503);

  receiver.behave('*', { mode: 'ok' });
  expect(
    await until(
      async () => (await request(h.url).post(`/v2/projects/${project}/config_maps`).send({ name: 'after', data })).status === 201,
      20_000,
      200,
    ),
  ).toBe(true);
  expect(await until(() => !h.gateway.recorder.isFull() && h.gateway.recorder.undeliveredBytes() === 0, 20_000)).toBe(true);

  const delivered = new Map(receiver.events('us-south').map((e) => [(e.event as AuditEvent).transactionID, e.event as AuditEvent]));
  for (const tx of accepted) expect(delivered.get(tx)).toMatchObject({ action: 'codeengine.configmap.create', outcome: 'success' });
  const refusedEvent = [...delivered.values()].find((e) => e.action === 'codeengine.configmap.create' && e.reason.reasonCode === 503);
  expect(refusedEvent?.reason.reasonForFailure).toMatch(/spool is full/);
  const metrics = await (await fetch(`${h.adminUrl}/metrics`)).text();
  expect(metrics).toMatch(/ce_audit_calls_refused_total\{reason="spool_full"\} [1-9]/);
}, 60_000);
