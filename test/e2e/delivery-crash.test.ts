/**
 * The gateway process dies (SIGKILL) or is told to stop (SIGTERM) while events are still undelivered; after a
 * restart on the same spool, every event of a call the client saw complete is delivered.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startReceiver, type Receiver } from '../../src/receiver/receiver';
import { CHECKPOINT_ACTION } from '../../src/integrity/checkpoint-event';
import type { AuditEvent } from '../../src/types';
import { startFakeCodeEngine, type FakeCodeEngine } from '../support/fake-code-engine';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process';
import { fireCalls, until } from '../support/load';

const KEY = 'crash-test-ingestion-key-5d4c3b';

let receiver: Receiver;
let upstream: FakeCodeEngine;
let dir: string;
const running: GatewayProcess[] = [];

beforeEach(async () => {
  receiver = await startReceiver({ logdnaKeys: { 'us-south': KEY } });
  upstream = await startFakeCodeEngine();
  dir = await mkdtemp(path.join(tmpdir(), 'ce-audit-crash-'));
});
afterEach(async () => {
  for (const gw of running.splice(0)) {
    gw.kill('SIGKILL');
    await gw.exited;
  }
  await receiver.close();
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
});

async function start(extra: Record<string, string> = {}): Promise<GatewayProcess> {
  const gw = await spawnGateway({
    PORT: '0',
    ADMIN_PORT: '0',
    CE_API_URL: upstream.url,
    CE_KUBE_API_URL: upstream.url,
    SPOOL_DIR: path.join(dir, 'spool'),
    AT_FILE_DIR: path.join(dir, 'audit'),
    AT_SINK: 'logdna',
    AT_LOGDNA_URL: receiver.logdnaUrlTemplate,
    AT_INGESTION_KEY: KEY,
    BATCH_MAX_WAIT_MS: '20',
    BATCH_MAX_EVENTS: '100',
    RETRY_BASE_MS: '100',
    RETRY_MAX_MS: '500',
    LOG_LEVEL: 'info',
    ...extra,
  });
  running.push(gw);
  return gw;
}

/** The calls' events delivered (the audit checkpoints, which carry no transaction, left out). */
function deliveredTransactions(): string[] {
  return receiver
    .events('us-south')
    .map((e) => e.event as AuditEvent)
    .filter((e) => e.action !== CHECKPOINT_ACTION)
    .map((e) => e.transactionID);
}

test('SIGKILL mid-burst, restart: nothing acknowledged to a client is lost', async () => {
  const first = await start();
  let killed = false;
  const calls = Array.from({ length: 20_000 }, (_, i) => ({ path: '/v2/function_runtimes', transactionId: `kill-${i}` }));
  const load = fireCalls(first.proxyUrl, calls, { concurrency: 16, stopWhen: () => killed });
  await until(() => receiver.events().length >= 500, 20_000);
  first.kill('SIGKILL');
  killed = true;
  expect((await first.exited).signal).toBe('SIGKILL');
  const results = await load;
  const acknowledged = results.filter((r) => r.complete && r.status === 200).map((r) => r.transactionId);
  expect(acknowledged.length).toBeGreaterThan(500);
  const beforeRestart = deliveredTransactions().length;

  await start();
  expect(await until(() => new Set(deliveredTransactions()).size >= acknowledged.length, 30_000)).toBe(true);
  const delivered = deliveredTransactions();
  const deliveredSet = new Set(delivered);
  expect(acknowledged.filter((t) => !deliveredSet.has(t))).toEqual([]);
  // At least once: duplicates only for the batch in flight when the process died.
  const duplicates = delivered.length - deliveredSet.size;
  process.stdout.write(
    `SIGKILL: ${acknowledged.length} calls acknowledged, ${beforeRestart} events delivered before the kill, ${deliveredSet.size} after restart, ${duplicates} duplicates\n`,
  );
  expect(duplicates).toBeLessThanOrEqual(100);
  expect(beforeRestart).toBeLessThan(acknowledged.length + 1000);
}, 90_000);

test('SIGTERM with the receiver down: exits 0 within the drain timeout; a restart delivers the rest', async () => {
  receiver.behave('*', { mode: 'down' });
  const gw = await start({ DRAIN_TIMEOUT_MS: '2000' });
  const calls = Array.from({ length: 300 }, (_, i) => ({ path: '/v2/function_runtimes', transactionId: `term-${i}` }));
  const results = await fireCalls(gw.proxyUrl, calls, { concurrency: 8 });
  expect(results.every((r) => r.status === 200)).toBe(true);

  const stoppingAt = Date.now();
  gw.kill('SIGTERM');
  const exit = await gw.exited;
  const tookMs = Date.now() - stoppingAt;
  expect(exit).toEqual({ code: 0, signal: null });
  expect(tookMs).toBeLessThan(2000 + 1000);
  expect(receiver.events()).toHaveLength(0);

  receiver.behave('*', { mode: 'ok' });
  await start();
  expect(await until(() => deliveredTransactions().length >= 300, 20_000)).toBe(true);
  expect(new Set(deliveredTransactions())).toEqual(new Set(calls.map((c) => c.transactionId)));
  // The shutdown checkpoint, spooled while the receiver was down, follows them.
  expect(
    await until(
      () => receiver.events().some((e) => (e.event as { auditCheckpoint?: { reason: string } }).auditCheckpoint?.reason === 'shutdown'),
      10_000,
    ),
  ).toBe(true);
}, 60_000);
