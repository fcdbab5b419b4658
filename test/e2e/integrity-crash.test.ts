/**
 * The chain across crashes of the gateway process: after `kill -9` the next start continues the same log (the
 * spool's records are the truth) and covers what the dead run left with a recovered checkpoint; when the spool
 * itself is lost, a new log starts. `ce-audit verify` tells the two apart, and the trail verifies either way.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFakeCodeEngine, type FakeCodeEngine } from '../support/fake-code-engine';
import { spawnGateway, type GatewayProcess } from '../support/gateway-process';
import { codes, journalLines, keygen, verifyJson } from '../support/trail';
import { until } from '../support/load';

let dir: string;
let upstream: FakeCodeEngine;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ce-audit-crash-'));
  upstream = await startFakeCodeEngine();
});
afterEach(async () => {
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
});

function start(): Promise<GatewayProcess> {
  return spawnGateway({
    PORT: '0',
    ADMIN_PORT: '0',
    CE_API_URL: upstream.url,
    CE_KUBE_API_URL: upstream.url,
    AT_FILE_DIR: path.join(dir, 'audit'),
    SPOOL_DIR: path.join(dir, 'spool'),
    BATCH_MAX_WAIT_MS: '10',
    AUDIT_SIGNING_KEY_FILE: path.join(dir, 'keys', 'audit-signing-key.pem'),
  });
}

async function calls(gw: GatewayProcess, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${gw.proxyUrl}/v2/function_runtimes`);
    await res.arrayBuffer();
  }
}

type Line = { action: string; auditChain: { log: string; seq: number }; auditCheckpoint?: { reason: string } };

test('kill -9, restart: the same log continues; a recovered checkpoint covers the dead run; every event verifies', async () => {
  expect(keygen(path.join(dir, 'keys')).status).toBe(0);
  const first = await start();
  await calls(first, 20);
  // Delivered to the journal, so the crash loses nothing but the process.
  expect(await until(async () => (await journalLines(path.join(dir, 'audit')).catch(() => [])).length >= 20, 10_000)).toBe(true);
  first.kill('SIGKILL');
  expect((await first.exited).signal).toBe('SIGKILL');
  const second = await start();
  await calls(second, 5);
  second.kill('SIGTERM');
  expect(await second.exited).toEqual({ code: 0, signal: null });
  const lines = (await journalLines(path.join(dir, 'audit'))).map((l) => JSON.parse(l) as Line);
  expect(new Set(lines.map((l) => l.auditChain.log)).size).toBe(1);
  const reasons = lines.filter((l) => l.auditCheckpoint).map((l) => [l.auditChain.seq, l.auditCheckpoint?.reason]);
  expect(reasons).toEqual([
    [20, 'recovered'],
    [26, 'shutdown'],
  ]);
  const { code, report } = await verifyJson(['--public-key', path.join(dir, 'keys', 'audit-signing-key.pub.pem'), path.join(dir, 'audit')]);
  expect(codes(report)).toEqual([]);
  expect(codes(report, true)).toContain('RESTART');
  expect(report.logs[0]).toMatchObject({ events: 27, verified: 26, firstSeq: 0, lastSeq: 26 });
  expect(code).toBe(0);
}, 60_000);

test('the spool lost with the process: a new log starts; the old one is told apart, its tail uncovered but not altered', async () => {
  expect(keygen(path.join(dir, 'keys')).status).toBe(0);
  const first = await start();
  await calls(first, 6);
  expect(await until(async () => (await journalLines(path.join(dir, 'audit')).catch(() => [])).length >= 6, 10_000)).toBe(true);
  first.kill('SIGKILL');
  await first.exited;
  await rm(path.join(dir, 'spool'), { recursive: true, force: true });
  const second = await start();
  await calls(second, 3);
  second.kill('SIGTERM');
  expect(await second.exited).toEqual({ code: 0, signal: null });
  const { code, report } = await verifyJson(['--public-key', path.join(dir, 'keys', 'audit-signing-key.vkey'), path.join(dir, 'audit')]);
  expect(report.logs).toHaveLength(2);
  expect(codes(report)).toEqual([]);
  const [older, newer] = [...report.logs].sort((a, b) => a.log.localeCompare(b.log));
  expect(older?.findings.map((f) => f.code)).toEqual(['UNCOVERED']);
  expect(newer).toMatchObject({ events: 4, verified: 3 });
  expect(code).toBe(0);
}, 60_000);
