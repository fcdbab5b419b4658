/**
 * One region's audit log over a real spool: sequence numbers, links and hashes; checkpoints on the interval, when
 * idle and at shutdown; and where the chain resumes after a clean stop, a crash, the spool deleting delivered
 * segments, and a lost or contradicted state file.
 */
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { canonicalJson } from '../../src/integrity/canonical-json';
import { recomputeEventHash, type ChainBlock } from '../../src/integrity/chain-block';
import { STATE_FILE } from '../../src/integrity/log-state';
import { RegionLog, type RegionLogOptions } from '../../src/integrity/region-log';
import { unchainedEvent } from '../../src/integrity/unchained-event';
import { RegionSpool } from '../../src/spool/region-spool';
import { until } from '../support/load';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'region-log-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Record = {
  [key: string]: unknown;
  action: string;
  auditChain: ChainBlock;
  auditCheckpoint?: { reason: string; size: number; predecessor?: unknown };
};

async function open(options: Partial<RegionLogOptions> = {}): Promise<{ spool: RegionSpool; log: RegionLog }> {
  let log: RegionLog | undefined;
  const spool = await RegionSpool.open({
    dir,
    fsync: false,
    segmentBytes: 2048,
    consumers: ['file'],
    beforeDelete: () => log?.save() ?? Promise.reject(new Error('not open')),
  });
  log = await RegionLog.open({
    region: 'eu-de',
    spool,
    dir,
    fsync: false,
    logger: pino({ level: 'silent' }),
    checkpointIntervalMs: 3_600_000,
    signingKey: undefined,
    accountId: 'acct',
    instance: 'test-host',
    ...options,
  });
  await spool.collect();
  return { spool, log };
}

async function append(log: RegionLog, n: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i++) {
    await log.append(
      unchainedEvent({
        id: `e${i}`,
        region: 'eu-de',
        eventTime: '2026-11-25T00:00:00.00+0000',
        timestampMs: Date.now(),
        severity: 'normal',
        json: JSON.stringify({ id: `e${i}`, action: 'codeengine.app.read', pad: 'x'.repeat(200), n: i }),
      }),
    );
  }
}

async function records(spool: RegionSpool): Promise<Record[]> {
  return (await spool.read({ segment: 0, offset: 0 }, 100_000, 1 << 30)).map((r) => JSON.parse(r.json) as Record);
}

/** A crash: the spool's writes are on disk, the log is never closed (no shutdown checkpoint, no final save). */
async function crash(spool: RegionSpool): Promise<void> {
  await spool.close();
}

test('events get consecutive sequence numbers, each linked to the one before, hashed in canonical form', async () => {
  const { spool, log } = await open();
  await append(log, 5);
  const rs = await records(spool);
  expect(rs.map((r) => r.auditChain.seq)).toEqual([0, 1, 2, 3, 4]);
  expect(rs[0]?.auditChain.prev).toBeNull();
  rs.forEach((r, i) => {
    expect(r.auditChain.log).toBe(log.log);
    expect(r.auditChain.log).toMatch(/^ce-audit-gateway\/eu-de\/test-host\/\d+$/);
    expect(recomputeEventHash(r, r.auditChain).toString('base64')).toBe(r.auditChain.hash);
    if (i > 0) expect(r.auditChain.prev).toBe(rs[i - 1]?.auditChain.hash);
  });
  // Stored canonical: the record is its own canonical form.
  const raw = (await spool.read({ segment: 0, offset: 0 }, 1, 1 << 20))[0]?.json as string;
  expect(canonicalJson(JSON.parse(raw))).toBe(raw);
  expect(log.state).toMatchObject({ size: 5, durableSize: 5 });
  await log.close();
  await spool.close();
});

test('a clean stop writes the shutdown checkpoint; the next start continues the same log without another', async () => {
  const first = await open();
  await append(first.log, 3);
  await first.log.close();
  await first.spool.close();
  const second = await open();
  expect(second.log.log).toBe(first.log.log);
  await append(second.log, 1, 3);
  const rs = await records(second.spool);
  expect(rs.map((r) => [r.auditChain.seq, r.auditCheckpoint?.reason ?? r.action])).toEqual([
    [0, 'codeengine.app.read'],
    [1, 'codeengine.app.read'],
    [2, 'codeengine.app.read'],
    [3, 'shutdown'],
    [4, 'codeengine.app.read'],
  ]);
  expect(rs[3]?.auditCheckpoint?.size).toBe(3);
  await second.log.close();
  await second.spool.close();
});

test('after a crash the log continues, and a recovered checkpoint covers what the last run left uncovered', async () => {
  const first = await open();
  await append(first.log, 4);
  await crash(first.spool);
  const second = await open();
  expect(second.log.log).toBe(first.log.log);
  const rs = await records(second.spool);
  expect(rs.map((r) => r.auditChain.seq)).toEqual([0, 1, 2, 3, 4]);
  expect(rs[4]?.auditCheckpoint).toMatchObject({ reason: 'recovered', size: 4 });
  expect(rs[4]?.auditChain.prev).toBe(rs[3]?.auditChain.hash);
  await second.log.close();
  await second.spool.close();
});

test('the chain survives the spool deleting delivered segments, and a crash after it', async () => {
  const first = await open();
  await append(first.log, 30);
  await first.spool.acknowledge('file', first.spool.endPosition);
  // Delivered segments went (only the one being written is left), the state was saved first.
  expect(JSON.parse(await readFile(path.join(dir, STATE_FILE), 'utf8'))).toMatchObject({ log: first.log.log });
  expect((await records(first.spool)).length).toBeLessThan(30);
  await append(first.log, 2, 30);
  await crash(first.spool);
  const second = await open();
  expect(second.log.log).toBe(first.log.log);
  await append(second.log, 1, 32);
  const rs = await records(second.spool);
  const tail = rs.slice(-3);
  expect(tail.map((r) => [r.auditChain.seq, r.auditCheckpoint?.reason ?? r.action])).toEqual([
    [31, 'codeengine.app.read'],
    [32, 'recovered'],
    [33, 'codeengine.app.read'],
  ]);
  await second.log.close();
  await second.spool.close();
});

test('state lost after the spool deleted part of the log: a new log starts, naming its predecessor', async () => {
  const first = await open();
  await append(first.log, 30);
  await first.spool.acknowledge('file', first.spool.endPosition);
  const last = (await records(first.spool)).pop() as Record;
  await crash(first.spool);
  await unlink(path.join(dir, STATE_FILE));
  const second = await open();
  expect(second.log.log).not.toBe(first.log.log);
  const rs = (await records(second.spool)).filter((r) => r.auditChain.log === second.log.log);
  expect(rs[0]?.auditChain).toMatchObject({ seq: 0, prev: null });
  expect(rs[0]?.auditCheckpoint).toMatchObject({
    reason: 'start',
    size: 0,
    predecessor: { log: first.log.log, size: 30, hash: last.auditChain.hash, why: expect.stringMatching(/no chain state was found/) },
  });
  await second.log.close();
  await second.spool.close();
});

test('state lost while the spool still holds the log from its first event: the log continues', async () => {
  const first = await open();
  await append(first.log, 5);
  await crash(first.spool);
  await unlink(path.join(dir, STATE_FILE));
  const second = await open();
  expect(second.log.log).toBe(first.log.log);
  expect(second.log.state.size).toBe(6); // five events and the recovered checkpoint
  await second.log.close();
  await second.spool.close();
});

test('a state file the spool contradicts starts a new log; an unreadable one is rebuilt from the spool when it can be', async () => {
  const first = await open();
  await append(first.log, 3);
  await first.log.close();
  await first.spool.close();
  const file = path.join(dir, STATE_FILE);
  const state = JSON.parse(await readFile(file, 'utf8')) as { position: { segment: number; offset: number } };
  // Pointing before the records it claims to include: they do not continue it.
  await writeFile(file, JSON.stringify({ ...state, position: { segment: 0, offset: 0 } }));
  const second = await open();
  expect(second.log.log).not.toBe(first.log.log);
  const rs = (await records(second.spool)).filter((r) => r.auditChain.log === second.log.log);
  expect(rs[0]?.auditCheckpoint).toMatchObject({
    reason: 'start',
    predecessor: { log: first.log.log, why: expect.stringMatching(/does not follow/) },
  });
  await second.log.close();
  await second.spool.close();
  await writeFile(file, '{"v":1,');
  // The spool still holds the second log from its first event: it continues, rebuilt from the records.
  const third = await open();
  expect(third.log.log).toBe(second.log.log);
  await third.log.close();
  await third.spool.close();
});

test('checkpoints every interval while events arrive, and when idle at least every idleCheckpointMs', async () => {
  const { spool, log } = await open({ checkpointIntervalMs: 100, idleCheckpointMs: 600 });
  await append(log, 2);
  expect(await until(async () => (await records(spool)).some((r) => r.auditCheckpoint?.reason === 'interval'), 3000)).toBe(true);
  const afterInterval = (await records(spool)).length;
  // Nothing new: no checkpoint on the next intervals...
  await new Promise((r) => setTimeout(r, 300));
  expect((await records(spool)).length).toBe(afterInterval);
  // ...until the idle limit passes.
  expect(await until(async () => (await records(spool)).some((r) => r.auditCheckpoint?.reason === 'idle'), 3000)).toBe(true);
  const rs = await records(spool);
  const idle = rs.find((r) => r.auditCheckpoint?.reason === 'idle') as Record;
  expect(idle.auditCheckpoint?.size).toBe(idle.auditChain.seq);
  await log.close();
  await spool.close();
});

test('appends after close are refused before they take a sequence number', async () => {
  const { spool, log } = await open();
  await append(log, 1);
  await log.close();
  await expect(append(log, 1, 1)).rejects.toThrow(/closed/);
  expect(log.state.size).toBe(2);
  await spool.close();
});

test('stopping never waits on a failing disk: the shutdown checkpoint is queued, and settles when the spool gives it up', async () => {
  const waiting: Array<{ reject: (err: Error) => void }> = [];
  const spool = {
    append: () => new Promise<void>((_resolve, reject) => waiting.push({ reject })),
    read: () => Promise.resolve([]),
    endPosition: { segment: 1, offset: 0 },
    committedRecords: 0,
    onDurable: () => () => undefined,
  };
  const log = await RegionLog.open({
    region: 'eu-de',
    spool,
    dir,
    fsync: false,
    logger: pino({ level: 'silent' }),
    checkpointIntervalMs: 3_600_000,
    signingKey: undefined,
    accountId: undefined,
  });
  const event = log.append(
    unchainedEvent({ id: 'e', region: 'eu-de', eventTime: '', timestampMs: 0, severity: 'normal', json: '{"action":"a.b.c"}' }),
  );
  const finished = log.finish();
  expect(waiting).toHaveLength(2); // the event and the shutdown checkpoint, both queued
  await expect(append(log, 1)).rejects.toThrow(/closed/);
  for (const w of waiting) w.reject(new Error('disk failed'));
  await expect(event).rejects.toThrow('disk failed');
  await expect(finished).rejects.toThrow('disk failed');
  await log.close();
  expect(JSON.parse(await readFile(path.join(dir, STATE_FILE), 'utf8'))).toMatchObject({ size: 0 });
});
