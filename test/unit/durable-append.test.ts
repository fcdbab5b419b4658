/**
 * The durable-append primitive (DurableAppender + DurableFile) under the faults of the disk underneath, injected at Node's
 * file-system API (fs-faults.ts): ENOSPC that lands part of a write, EIO on the durable write, removed files, a disk
 * that hangs. What it must keep: no torn or repeated line, order, retries with jittered backoff on timers that never
 * keep the process alive, no handle left open, and a close that never waits past its deadline.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { backoffDelay } from '../../src/delivery/backoff';
import { JsonlWriter } from '../../src/record/jsonl-writer';
import { RegionSpool } from '../../src/spool/region-spool';
import { DurableAppender, type AppendTarget } from '../../src/storage/durable-appender';
import { DurableFile } from '../../src/storage/durable-file';
import { installFsFaults, type FaultController } from '../support/fs-faults';
import { until } from '../support/load';

let dir: string;
let faults: FaultController;
beforeAll(() => {
  faults = installFsFaults();
});
afterAll(() => faults.uninstall());
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'durable-'));
});
afterEach(async () => {
  faults.clear();
  jest.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

function lines(text: string): string[] {
  expect(text.endsWith('\n') || text === '').toBe(true);
  return text.split('\n').filter(Boolean);
}

describe('DurableAppender', () => {
  /** A target whose commit fails `failures` times, recording when each attempt came. */
  function flaky(failures: number): { target: AppendTarget<number>; attempts: number[]; committed: number[][] } {
    const attempts: number[] = [];
    const committed: number[][] = [];
    let left = failures;
    return {
      attempts,
      committed,
      target: {
        commit: async (batch) => {
          attempts.push(Date.now());
          if (left-- > 0) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
          committed.push([...batch]);
        },
        repair: async () => undefined,
        finish: async () => undefined,
      },
    };
  }

  test('retries with jittered backoff capped at retryMaxMs, on timers that do not keep the process alive', async () => {
    const timers: NodeJS.Timeout[] = [];
    const realSetTimeout = global.setTimeout;
    jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      const t = realSetTimeout(fn, ms);
      if (new Error().stack?.includes('durable-appender')) timers.push(t);
      return t;
    }) as typeof setTimeout);
    const { target, attempts, committed } = flaky(8);
    const errors: number[] = [];
    let recoveredAfter = -1;
    const a = new DurableAppender<number>({
      target,
      onError: (_err, attempt) => errors.push(attempt),
      onRecovered: (ms) => (recoveredAfter = ms),
      retryBaseMs: 20,
      retryMaxMs: 60,
    });
    expect(a.failure).toBeUndefined();
    const done = Promise.all([a.append(1), a.append(2)]);
    await until(() => errors.length >= 1, 2000, 1);
    expect(a.failure?.error.message).toMatch(/EIO/);
    await done;
    expect(errors).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(committed).toEqual([[1, 2]]);
    expect(a.failure).toBeUndefined();
    expect(recoveredAfter).toBeGreaterThanOrEqual(0);
    const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] as number));
    // Capped (with room for a loaded machine), and jittered: not all alike.
    for (const gap of gaps) expect(gap).toBeLessThan(60 + 100);
    expect(new Set(gaps).size).toBeGreaterThan(1);
    expect(timers.length).toBeGreaterThan(0);
    for (const t of timers) expect(t.hasRef()).toBe(false);
    await a.close();
  });

  test('close(deadline) on a disk that never answers returns by the deadline with what was not written; appends reject', async () => {
    const target: AppendTarget<string> = {
      commit: () => new Promise(() => undefined),
      repair: async () => undefined,
      finish: () => new Promise(() => undefined),
    };
    const a = new DurableAppender<string>({ target, onError: () => undefined });
    const pending = [a.append('a'), a.append('b')].map((p) =>
      p.then(
        () => 'written',
        (err: Error) => err.message,
      ),
    );
    await until(() => a.writingForMs() > 0, 1000, 1);
    const later = a.append('c').then(
      () => 'written',
      (err: Error) => err.message,
    );
    const started = Date.now();
    const left = await a.close(Date.now() + 300);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(300 + 250 + 200);
    expect(left).toEqual(['a', 'b', 'c']);
    expect(await Promise.all([...pending, later])).toEqual(
      Array(3).fill('not written before shutdown: the disk did not complete the write in time'),
    );
    await expect(a.append('d')).rejects.toThrow('closed');
  });
});

describe('the journal and the spool retry alike', () => {
  /** Retry waits the writers schedule: their delays, and whether they keep the process alive. */
  function retryTimers(): () => Array<{ ms: number; ref: boolean }> {
    const seen: Array<{ ms: number; timer: NodeJS.Timeout }> = [];
    const realSetTimeout = global.setTimeout;
    jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      const timer = realSetTimeout(fn, ms);
      if (/[\\/]src[\\/](record|spool|storage)[\\/]/.test(new Error().stack ?? '')) seen.push({ ms: ms ?? 0, timer });
      return timer;
    }) as typeof setTimeout);
    return () => seen.map((s) => ({ ms: s.ms, ref: s.timer.hasRef() }));
  }

  test.each(['journal', 'spool'])(
    '%s: backoffDelay with full jitter (capped at 500 ms), on timers that do not keep the process alive',
    async (which) => {
      jest.spyOn(Math, 'random').mockReturnValue(0.5);
      const timers = retryTimers();
      const errors: number[] = [];
      faults.set([{ under: dir, ops: ['write'], error: 'EIO' }]);
      let done: Promise<void>;
      let close: () => Promise<unknown>;
      if (which === 'journal') {
        const w = new JsonlWriter({ fsync: true, maxPending: 10, onError: (_e, a) => errors.push(a), onRecovered: () => undefined });
        done = w.append(path.join(dir, 'j.jsonl'), '{}');
        close = () => w.close();
      } else {
        const spool = await RegionSpool.open({
          dir: path.join(dir, 'spool'),
          fsync: true,
          segmentBytes: 1 << 20,
          consumers: ['a'],
          onError: (_e, a) => errors.push(a),
        });
        done = spool.append({ timestampMs: 1, severity: 'normal', json: '{}' });
        close = () => spool.close();
      }
      await until(() => errors.filter((a) => a > 0).length >= 7, 10_000, 5);
      faults.clear();
      await done;
      await close();
      const retries = timers().filter((t) => t.ms > 0);
      expect(retries.length).toBeGreaterThanOrEqual(6);
      // With random() at 0.5: half of min(500, 25 * 2^attempt), attempt by attempt (the old loops waited 50 * 2^n, unjittered).
      expect(retries.slice(0, 6).map((t) => t.ms)).toEqual([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, 25, 500, undefined, () => 0.5)));
      expect(retries.filter((t) => t.ref)).toEqual([]);
    },
  );
});

describe('DurableFile and JsonlWriter on a failing disk', () => {
  test('ENOSPC part-way through a write: the retry writes the batch once, after the last complete line; nothing torn', async () => {
    const file = path.join(dir, 'j', 'audit.jsonl');
    const errors: string[] = [];
    const w = new JsonlWriter({ fsync: true, maxPending: 1000, onError: (e) => errors.push(e.message), onRecovered: () => undefined });
    await w.append(file, '{"n":0}');
    faults.set([{ under: dir, ops: ['write'], error: 'ENOSPC', partial: true }]);
    const appends = [1, 2, 3].map((n) => w.append(file, JSON.stringify({ n, pad: 'x'.repeat(500) })));
    await until(() => errors.length >= 2, 3000, 5);
    expect(errors[0]).toMatch(/ENOSPC/);
    expect(w.healthy).toBe(false);
    // While failing, the file never shows a partial line for long: each retry first cuts it back.
    faults.clear();
    await Promise.all(appends);
    expect(w.healthy).toBe(true);
    const got = lines(await readFile(file, 'utf8')).map((l) => (JSON.parse(l) as { n: number }).n);
    expect(got).toEqual([0, 1, 2, 3]);
    await w.close();
    expect(faults.openFiles(dir)).toEqual([]);
  });

  test('EIO on the durable write of one of two files: no line is written twice in the file that succeeded', async () => {
    const a = path.join(dir, 'a.jsonl');
    const b = path.join(dir, 'b', 'b.jsonl');
    const errors: string[] = [];
    const w = new JsonlWriter({ fsync: true, maxPending: 1000, onError: (e) => errors.push(e.message), onRecovered: () => undefined });
    faults.set([{ under: path.join(dir, 'b'), ops: ['write'], error: 'EIO' }]);
    const appends = [w.append(a, '{"a":1}'), w.append(b, '{"b":1}'), w.append(a, '{"a":2}')];
    await until(() => errors.length >= 3, 3000, 5);
    faults.clear();
    await Promise.all(appends);
    await w.close();
    expect(await readFile(a, 'utf8')).toBe('{"a":1}\n{"a":2}\n');
    expect(await readFile(b, 'utf8')).toBe('{"b":1}\n');
  });

  test('no handle leaks when repairing a torn file fails at open (the old "Closing file descriptor on garbage collection")', async () => {
    const file = path.join(dir, 'torn.jsonl');
    await writeFile(file, '{"ok":1}\n{"torn":');
    // Whatever the repair of the torn line needs fails: cutting it (EIO), or writing after it (ENOSPC).
    faults.set([
      { under: file, ops: ['truncate'], error: 'EIO' },
      { under: file, ops: ['write'], error: 'ENOSPC' },
    ]);
    await expect(DurableFile.openLines(file, { fsync: true })).rejects.toThrow(/EIO/);
    expect(faults.openFiles(dir)).toEqual([]);
    const errors: string[] = [];
    const w = new JsonlWriter({ fsync: true, maxPending: 1000, onError: (e) => errors.push(e.message), onRecovered: () => undefined });
    const appended = w.append(file, '{"next":2}');
    await until(() => errors.length >= 2, 3000, 5);
    expect(faults.openFiles(dir)).toEqual([]);
    faults.clear();
    await appended;
    await w.close();
    expect(faults.openFiles(dir)).toEqual([]);
    expect(await readFile(file, 'utf8')).toBe('{"ok":1}\n{"next":2}\n');
  });

  test('a journal removed while open is written back whole at its path, and later lines follow it', async () => {
    const file = path.join(dir, 'journal', 'us-south', 'audit.jsonl');
    const errors: string[] = [];
    const w = new JsonlWriter({ fsync: true, maxPending: 1000, onError: (e) => errors.push(e.message), onRecovered: () => undefined });
    await Promise.all([1, 2, 3].map((n) => w.append(file, `{"n":${n}}`)));
    await rm(path.join(dir, 'journal'), { recursive: true });
    expect(await until(async () => (await readFile(file, 'utf8').catch(() => '')) !== '', 2000, 20)).toBe(true);
    expect(errors.join('\n')).toMatch(/was removed while the gateway was writing it/);
    await w.append(file, '{"n":4}');
    await w.close();
    expect(await readFile(file, 'utf8')).toBe('{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n');
  });
});

describe('RegionSpool when its directory is removed while running', () => {
  test('the segment being written is written back whole; older segments are forgotten and their undelivered events counted', async () => {
    const spoolDir = path.join(dir, 'spool', 'us-south');
    const lost: number[] = [];
    const errors: string[] = [];
    const spool = await RegionSpool.open({
      dir: spoolDir,
      fsync: true,
      segmentBytes: 64 * 1024,
      consumers: ['file'],
      onLost: (n) => lost.push(n),
      onError: (e) => errors.push(e.message),
    });
    const entry = (i: number) => ({ timestampMs: i, severity: 'normal' as const, json: JSON.stringify({ i, pad: 'p'.repeat(1000) }) });
    for (let i = 0; i < 100; i++) await spool.append(entry(i));
    const before = await spool.read({ segment: 0, offset: 0 }, 1000, 1e9);
    expect(before).toHaveLength(100);
    const current = spool.endPosition.segment;
    const inCurrent = before.filter((r) => r.position.segment === current).length;
    await rm(path.join(dir, 'spool'), { recursive: true });
    // Appends go on meanwhile: into the removed file until the probe sees it, then into the restored one.
    for (let i = 100; i < 110; i++) await spool.append(entry(i));
    expect(await until(() => lost.length > 0, 3000, 20)).toBe(true);
    expect(lost).toEqual([100 - inCurrent]);
    expect(errors.join('\n')).toMatch(/was removed while in use; written back whole/);
    const after = await spool.read({ segment: 0, offset: 0 }, 1000, 1e9);
    expect(after.map((r) => (JSON.parse(r.json) as { i: number }).i)).toEqual(
      Array.from({ length: 10 + inCurrent }, (_, k) => 100 - inCurrent + k),
    );
    await spool.close();
    const reopened = await RegionSpool.open({ dir: spoolDir, fsync: true, segmentBytes: 64 * 1024, consumers: ['file'] });
    expect((await reopened.read({ segment: 0, offset: 0 }, 1000, 1e9)).length).toBe(10 + inCurrent);
    expect(reopened.recoveredFrom.corruptSegments).toBe(0);
    await reopened.close();
  });
});
