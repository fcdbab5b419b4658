/**
 * Activity Tracker unreachable for 30 s in the middle of a burst: the gateway keeps answering calls (events go
 * to the spool), keeps retrying, and delivers everything once the receiver is back.
 */
import type { AuditEvent } from '../../src/types';
import { logdnaSinkEnv, useReceiverAndGateway } from '../support/delivery';
import { fireCalls, until } from '../support/load';

const KEY = 'outage-test-ingestion-key-9a8b7c';
const OUTAGE_MS = 30_000;

const ctx = useReceiverAndGateway({ logdnaKeys: { 'us-south': KEY } }, (receiver) => ({
  ...logdnaSinkEnv(receiver, KEY),
  BATCH_MAX_WAIT_MS: '50',
  RETRY_BASE_MS: '250',
  RETRY_MAX_MS: '2000',
  LOG_LEVEL: 'info',
}));

test('receiver down for 30 s during a burst: every event delivered after it returns', async () => {
  const { receiver, h } = ctx;
  const sent: string[] = [];
  const burst = async (from: number, count: number) => {
    const calls = Array.from({ length: count }, (_, i) => ({ path: '/v2/function_runtimes', transactionId: `out-${from + i}` }));
    const results = await fireCalls(h.url, calls, { concurrency: 8 });
    expect(results.every((r) => r.status === 200)).toBe(true);
    sent.push(...calls.map((c) => c.transactionId));
  };

  await burst(0, 300); // before the outage
  const downAt = Date.now();
  receiver.behave('*', { mode: 'down' });
  // Calls keep flowing during the outage, in waves.
  for (let wave = 1; Date.now() - downAt < OUTAGE_MS; wave++) {
    await burst(wave * 1000, 200);
    await new Promise((r) => setTimeout(r, 2000));
  }
  const metricsDuring = await (await fetch(`${h.adminUrl}/metrics`)).text();
  receiver.behave('*', { mode: 'ok' });
  await burst(999_000, 300); // after

  expect(await until(() => receiver.events('us-south').length >= sent.length, 30_000)).toBe(true);
  const got = receiver.events('us-south').map((e) => (e.event as AuditEvent).transactionID);
  expect(new Set(got)).toEqual(new Set(sent));
  expect(got.length).toBe(sent.length);
  // While down, the backlog was visible.
  expect(metricsDuring).toMatch(/ce_audit_oldest_undelivered_event_age_seconds\{region="us-south"\} [1-9]/);
  expect(metricsDuring).toMatch(/ce_audit_events_retried_total\{region="us-south",sink="logdna"\} [1-9]/);
}, 120_000);
