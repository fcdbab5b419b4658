import { spawn } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RegionSpool } from '../../src/spool/region-spool';
import type { RegionSpoolOptions, SpoolEntry, SpoolPosition, SpoolRecord } from '../../src/spool/types';
import { transpile } from '../support/transpile';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'spool-recovery-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const START: SpoolPosition = { segment: 0, offset: 0 };

function entry(i: number): SpoolEntry {
  return { timestampMs: 1_700_000_000_000 + i, severity: 'warning', json: JSON.stringify({ i, pad: 'x'.repeat(60) }) };
}

function ids(records: readonly SpoolRecord[]): number[] {
  return records.map((r) => (JSON.parse(r.json) as { i: number }).i);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, k) => from + k);
}

function openSpool(overrides: Partial<RegionSpoolOptions> = {}): Promise<RegionSpool> {
  return RegionSpool.open({ dir, fsync: false, segmentBytes: 1 << 20, consumers: ['a'], ...overrides });
}

async function appendRange(spool: RegionSpool, from: number, to: number): Promise<void> {
  await Promise.all(range(from, to).map((i) => spool.append(entry(i))));
}

async function segmentFiles(): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
}

/** Writes 0..count-1 in one segment, closes, and returns the records as read back. */
async function writeOneSegment(count: number): Promise<SpoolRecord[]> {
  const spool = await openSpool();
  await appendRange(spool, 0, count);
  const all = await spool.read(START, 1000, 1e9);
  await spool.close();
  return all;
}

async function flipByte(file: string, offset: number): Promise<void> {
  const h = await open(file, 'r+');
  const b = Buffer.alloc(1);
  await h.read(b, 0, 1, offset);
  b[0] = (b[0] ?? 0) ^ 0xff;
  await h.write(b, 0, 1, offset);
  await h.close();
}

describe('recovery at open', () => {
  test('a torn last record (cut mid-write) is truncated; earlier records are intact; appends go to a new segment', async () => {
    const all = await writeOneSegment(10);
    const last = all[9];
    const file = path.join(dir, (await segmentFiles())[0] ?? '');
    const cut = (last?.position.offset ?? 0) + 13;
    await truncate(file, cut);

    const spool = await openSpool();
    expect(spool.recoveredFrom).toEqual({ segments: 1, records: 9, truncatedBytes: 13, unusedBytes: 0, corruptSegments: 0 });
    expect((await stat(file)).size).toBe(last?.position.offset);
    expect(ids(await spool.read(START, 100, 1e9))).toEqual(range(0, 9));
    await appendRange(spool, 100, 102);
    const files = await segmentFiles();
    expect(files).toHaveLength(2);
    const after = await spool.read(START, 100, 1e9);
    expect(ids(after)).toEqual([...range(0, 9), 100, 101]);
    expect(after[9]?.position.segment).toBeGreaterThan(last?.position.segment ?? 0);
    await spool.close();
  });

  test('a flipped crc byte in the last record is detected and the record discarded', async () => {
    const all = await writeOneSegment(5);
    const last = all[4];
    const file = path.join(dir, (await segmentFiles())[0] ?? '');
    await flipByte(file, (last?.position.offset ?? 0) + 5);
    const spool = await openSpool();
    expect(spool.recoveredFrom).toMatchObject({ records: 4, truncatedBytes: last?.size });
    expect(ids(await spool.read(START, 100, 1e9))).toEqual(range(0, 4));
    await spool.close();
  });

  test('a zero-filled tail (the space written ahead of the records, or what a filesystem exposes after a crash) is cut as unused', async () => {
    await writeOneSegment(3);
    const file = path.join(dir, (await segmentFiles())[0] ?? '');
    const h = await open(file, 'a');
    await h.write(Buffer.alloc(4096));
    await h.close();
    const spool = await openSpool();
    expect(spool.recoveredFrom).toMatchObject({ records: 3, truncatedBytes: 0, unusedBytes: 4096, corruptSegments: 0 });
    expect(ids(await spool.read(START, 100, 1e9))).toEqual(range(0, 3));
    await spool.close();
  });

  test('a record torn in the zeros ahead of it: the torn bytes are truncated, the zeros after them unused', async () => {
    const all = await writeOneSegment(4);
    const file = path.join(dir, (await segmentFiles())[0] ?? '');
    const last = all[3];
    const h = await open(file, 'r+');
    // The last record loses its second half (zeros instead), and 8 KiB of zeros follow it.
    const half = Math.ceil((last?.size ?? 0) / 2);
    await h.write(Buffer.alloc(8192 + half), 0, 8192 + half, (last?.position.offset ?? 0) + (last?.size ?? 0) - half);
    await h.close();
    const spool = await openSpool();
    const tornBytes = (last?.size ?? 0) - half;
    expect(spool.recoveredFrom).toMatchObject({ records: 3, truncatedBytes: tornBytes, unusedBytes: half + 8192, corruptSegments: 0 });
    expect(ids(await spool.read(START, 100, 1e9))).toEqual(range(0, 3));
    await spool.close();
  });

  test('corruption in an older segment: reported through onError, the rest of that segment discarded, later segments kept', async () => {
    const first = await writeOneSegment(6);
    let spool = await openSpool();
    await appendRange(spool, 6, 9);
    await spool.close();
    const [older] = await segmentFiles();
    // Damage the payload of record 2 of the older segment.
    await flipByte(path.join(dir, older ?? ''), (first[2]?.position.offset ?? 0) + 25);
    const onError = jest.fn();
    spool = await openSpool({ onError });
    expect(onError).toHaveBeenCalledTimes(1);
    const [err, attempt] = onError.mock.calls[0] as [Error, number];
    expect(err.message).toMatch(/crc mismatch in the record at offset \d+; discarding \d+ bytes/);
    expect(attempt).toBe(0);
    expect(spool.recoveredFrom).toMatchObject({ records: 5, corruptSegments: 1 });
    expect(ids(await spool.read(START, 100, 1e9))).toEqual([0, 1, 6, 7, 8]);
    expect(spool.pending('a')).toBe(5);
    await spool.close();
  });

  test('cursors: missing, malformed, past the end of a truncated segment, or in a deleted segment are clamped', async () => {
    const all = await writeOneSegment(6);
    const seg = all[0]?.position.segment ?? 0;
    await writeFile(path.join(dir, 'cursor-b.json'), '');
    await writeFile(path.join(dir, 'cursor-c.json'), JSON.stringify({ segment: seg, offset: 1e9 }));
    await writeFile(path.join(dir, 'cursor-d.json'), JSON.stringify({ segment: seg - 1, offset: 0 }));
    await writeFile(path.join(dir, 'cursor-e.json'), JSON.stringify(all[3]?.position));
    const spool = await openSpool({ consumers: ['a', 'b', 'c', 'd', 'e'] });
    expect(spool.pending('a')).toBe(6);
    expect(spool.pending('b')).toBe(6);
    expect(spool.pending('c')).toBe(0);
    expect(spool.pending('d')).toBe(6);
    expect(spool.pending('e')).toBe(3);
    expect(spool.cursor('c')).toEqual(spool.endPosition);
    await spool.close();
  });

  test('cursor files are written atomically as {"segment","offset"}', async () => {
    const spool = await openSpool();
    await appendRange(spool, 0, 3);
    await spool.acknowledge('a', spool.endPosition);
    const saved = JSON.parse(await readFile(path.join(dir, 'cursor-a.json'), 'utf8')) as unknown;
    expect(saved).toEqual(spool.endPosition);
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    await spool.close();
  });
});

/** src/spool and what it imports, compiled for a child process (see transpile). */
async function transpileSpool(outDir: string): Promise<string> {
  await transpile(outDir, ['src/spool', 'src/storage', 'src/delivery/backoff.ts']);
  return path.join(outDir, 'src', 'spool', 'region-spool.js');
}

/** Appends forever with 64 appends in flight, printing the index of each append that resolved. */
const CHILD = `
const { RegionSpool } = require(process.argv[1]);
(async () => {
  const spool = await RegionSpool.open({ dir: process.argv[2], fsync: true, segmentBytes: 64 * 1024, consumers: ['a'] });
  let next = 0;
  const pad = 'k'.repeat(700);
  const worker = async () => {
    for (;;) {
      const i = next++;
      await spool.append({ timestampMs: i, severity: 'critical', json: JSON.stringify({ i, pad }) });
      process.stdout.write(i + '\\n');
    }
  };
  for (let w = 0; w < 64; w++) void worker();
})();
`;

test('kill -9 mid-stream: every append the child saw resolve is on disk, intact, and the log is a gapless prefix', async () => {
  const modulePath = await transpileSpool(path.join(dir, 'build'));
  const spoolDir = path.join(dir, 'spool');
  const child = spawn(process.execPath, ['-e', CHILD, modulePath, spoolDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve) => {
    const deadline = setTimeout(resolve, 4000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.length > 20_000) {
        clearTimeout(deadline);
        resolve();
      }
    });
  });
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  expect(err).toBe('');
  // The last line may be cut by the kill.
  const reported = out.split('\n').slice(0, -1).map(Number);
  expect(reported.length).toBeGreaterThan(1000);

  const spool = await RegionSpool.open({ dir: spoolDir, fsync: true, segmentBytes: 64 * 1024, consumers: ['a'] });
  const records = await spool.read(START, 1e6, 1e12);
  const found = ids(records);
  expect(found).toEqual(range(0, found.length));
  expect(found.length).toBeGreaterThan(Math.max(...reported));
  for (const r of records) {
    const i = (JSON.parse(r.json) as { i: number }).i;
    expect(r).toMatchObject({ timestampMs: i, severity: 'critical', json: JSON.stringify({ i, pad: 'k'.repeat(700) }) });
  }
  expect(spool.recoveredFrom.records).toBe(found.length);
  expect(spool.recoveredFrom.corruptSegments).toBe(0);
  await spool.close();
}, 15_000);
