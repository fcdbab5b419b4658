import { constants } from 'node:fs';
import { mkdtemp, open, readdir, readFile, readlink, rm, stat, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RegionSpool } from '../../src/spool/region-spool';
import { SegmentWriter } from '../../src/spool/segment-writer';
import type { RegionSpoolOptions, SpoolEntry, SpoolPosition, SpoolRecord } from '../../src/spool/types';
import type { Severity } from '../../src/types';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'spool-'));
});
afterEach(async () => {
  jest.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

const SEVERITIES: readonly Severity[] = ['normal', 'warning', 'critical'];
const START: SpoolPosition = { segment: 0, offset: 0 };

function entry(i: number, pad = 50): SpoolEntry {
  return { timestampMs: 1_700_000_000_000 + i, severity: SEVERITIES[i % 3] ?? 'normal', json: JSON.stringify({ i, pad: 'é'.repeat(pad) }) };
}

function ids(records: readonly SpoolRecord[]): number[] {
  return records.map((r) => (JSON.parse(r.json) as { i: number }).i);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, k) => from + k);
}

function openSpool(overrides: Partial<RegionSpoolOptions> = {}): Promise<RegionSpool> {
  return RegionSpool.open({ dir, fsync: true, segmentBytes: 1 << 20, consumers: ['a'], ...overrides });
}

async function appendRange(spool: RegionSpool, from: number, to: number, pad?: number): Promise<void> {
  await Promise.all(range(from, to).map((i) => spool.append(entry(i, pad))));
}

async function segmentFiles(): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith('.wal')).sort();
}

type FileHandleMethods = Pick<FileHandle, 'datasync' | 'write'>;

function allZeros(bytes: Buffer): boolean {
  return bytes.every((b) => b === 0);
}

/** Calls of a spied FileHandle.write that wrote records, not the zeros written ahead of them. */
function recordWrites(write: jest.SpyInstance): number {
  return write.mock.calls.filter(([buffer]) => Buffer.isBuffer(buffer) && !allZeros(buffer)).length;
}

async function fileHandlePrototype(): Promise<FileHandleMethods> {
  const h = await open(path.join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(h) as FileHandleMethods;
  await h.close();
  return proto;
}

describe('append and read', () => {
  test('round trip across several segments, with every field and position intact', async () => {
    const spool = await openSpool({ segmentBytes: 1000 });
    for (let i = 0; i < 60; i += 6) await appendRange(spool, i, i + 6);
    const all = await spool.read(START, 1000, 1e9);
    expect(ids(all)).toEqual(range(0, 60));
    expect(new Set(all.map((r) => r.position.segment)).size).toBeGreaterThan(3);
    for (const [k, r] of all.entries()) {
      expect(r).toMatchObject(entry(k));
      expect(r.size).toBe(20 + Buffer.byteLength(r.json));
      expect(r.next).toEqual({ segment: r.position.segment, offset: r.position.offset + r.size });
    }
    expect(spool.endPosition).toEqual(all[59]?.next);
    expect(spool.pending('a')).toBe(60);
    expect(spool.totalBytes).toBe(all.reduce((n, r) => n + r.size, 0));
    expect(spool.bytes).toBe(spool.totalBytes);
    // Reading on from any record's `next` continues exactly there, across segment ends.
    let pos = START;
    const seen: number[] = [];
    for (;;) {
      const batch = await spool.read(pos, 7, 1e9);
      if (batch.length === 0) break;
      seen.push(...ids(batch));
      pos = batch[batch.length - 1]?.next ?? pos;
    }
    expect(seen).toEqual(range(0, 60));
    await spool.close();
  });

  test('maxEvents and maxBytes limit a read; one record is returned even if it alone is over maxBytes', async () => {
    const spool = await openSpool();
    await appendRange(spool, 0, 10);
    const jsonBytes = Buffer.byteLength(entry(0).json);
    expect(ids(await spool.read(START, 3, 1e9))).toEqual([0, 1, 2]);
    expect(ids(await spool.read(START, 100, jsonBytes * 4))).toEqual([0, 1, 2, 3]);
    expect(ids(await spool.read(START, 100, jsonBytes * 4 - 1))).toEqual([0, 1, 2]);
    expect(ids(await spool.read(START, 100, 1))).toEqual([0]);
    expect(await spool.read(START, 0, 1e9)).toEqual([]);
    expect(await spool.read(spool.endPosition, 100, 1e9)).toEqual([]);
    await spool.close();
  });

  test('a position between two records starts at the next record', async () => {
    const spool = await openSpool();
    await appendRange(spool, 0, 3);
    const [first] = await spool.read(START, 1, 1e9);
    expect(ids(await spool.read({ segment: first?.position.segment ?? 0, offset: 5 }, 10, 1e9))).toEqual([1, 2]);
    await spool.close();
  });

  test('only durable records are read: nothing of a group commit still being written', async () => {
    const spool = await openSpool();
    await appendRange(spool, 0, 3);
    const proto = await fileHandlePrototype();
    const realWrite = proto.write as (this: FileHandle, ...args: unknown[]) => Promise<{ bytesWritten: number }>;
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // With fsync the write is the durable step (O_DSYNC): held here, the batch is written but not yet durable.
    jest.spyOn(proto, 'write').mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
      await gate;
      return realWrite.apply(this, args);
    } as FileHandle['write']);
    const woken = jest.fn();
    spool.onDurable(woken);
    const end = spool.endPosition;
    let done = false;
    const pending = appendRange(spool, 3, 6).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(done).toBe(false);
    expect(ids(await spool.read(START, 100, 1e9))).toEqual([0, 1, 2]);
    expect(spool.endPosition).toEqual(end);
    expect(spool.pending('a')).toBe(3);
    expect(woken).not.toHaveBeenCalled();
    release();
    await pending;
    expect(woken).toHaveBeenCalledTimes(1);
    expect(ids(await spool.read(START, 100, 1e9))).toEqual(range(0, 6));
    await spool.close();
  });

  test('an event over 1 MiB or with an unknown severity is refused at once; after close() appends reject', async () => {
    const spool = await openSpool();
    await expect(spool.append({ timestampMs: 1, severity: 'normal', json: 'x'.repeat(1024 * 1024 + 1) })).rejects.toThrow(/exceeds/);
    await expect(spool.append({ ...entry(0), severity: 'fatal' as Severity })).rejects.toThrow(/unknown severity "fatal"/);
    const last = spool.append(entry(1));
    await spool.close();
    await expect(last).resolves.toBeUndefined();
    await expect(spool.append(entry(2))).rejects.toThrow(/closed/);
  });

  test('onDurable listeners are called after each commit until unsubscribed', async () => {
    const spool = await openSpool();
    const listener = jest.fn();
    const off = spool.onDurable(listener);
    await spool.append(entry(0));
    expect(listener).toHaveBeenCalledTimes(1);
    off();
    await spool.append(entry(1));
    expect(listener).toHaveBeenCalledTimes(1);
    await spool.close();
  });

  test('committedRecords counts the records made durable since open, not those recovered', async () => {
    const first = await openSpool();
    expect(first.committedRecords).toBe(0);
    await appendRange(first, 0, 7);
    expect(first.committedRecords).toBe(7);
    await first.close();
    const again = await openSpool();
    expect(again.committedRecords).toBe(0);
    const pending = again.append(entry(7));
    // Not yet durable: not counted.
    expect(again.committedRecords).toBe(0);
    await pending;
    expect(again.committedRecords).toBe(1);
    await again.close();
  });
});

describe('group commit', () => {
  test('2000 concurrent appends: all in call order, with far fewer durable writes than appends and no fdatasync', async () => {
    const spool = await openSpool();
    const proto = await fileHandlePrototype();
    const syncs = jest.spyOn(proto, 'datasync');
    const writes = jest.spyOn(proto, 'write');
    await appendRange(spool, 0, 2000);
    expect(ids(await spool.read(START, 5000, 1e9))).toEqual(range(0, 2000));
    // Each batch is one O_DSYNC write (the zeros ahead were written when the segment was started).
    expect(recordWrites(writes)).toBeGreaterThan(0);
    expect(recordWrites(writes)).toBeLessThan(20);
    expect(writes).toHaveBeenCalledTimes(recordWrites(writes));
    expect(syncs).not.toHaveBeenCalled();
    await spool.close();
  });

  test('with fsync the segment being written is open O_DSYNC; without, it is not (Linux: /proc/self/fdinfo)', async () => {
    // The flags of this process's open descriptors on segment files of `where`, as the kernel reports them.
    const segmentFlags = async (where: string): Promise<number[]> => {
      const flags: number[] = [];
      for (const fd of await readdir('/proc/self/fd')) {
        const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
        if (!target.startsWith(where) || !target.endsWith('.wal')) continue;
        const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8');
        flags.push(parseInt(/^flags:\s+([0-7]+)/m.exec(info)?.[1] ?? 'x', 8));
      }
      return flags;
    };
    const durable = await openSpool({ segmentBytes: 300 });
    await appendRange(durable, 0, 10);
    const other = await mkdtemp(path.join(tmpdir(), 'spool-'));
    const plain = await RegionSpool.open({ dir: other, fsync: false, segmentBytes: 300, consumers: ['a'] });
    await appendRange(plain, 0, 10);
    try {
      const [durableFlags, plainFlags] = [await segmentFlags(dir), await segmentFlags(other)];
      expect(durableFlags).toHaveLength(1);
      expect(plainFlags).toHaveLength(1);
      expect((durableFlags[0] ?? 0) & constants.O_DSYNC).toBe(constants.O_DSYNC);
      expect((plainFlags[0] ?? 0) & constants.O_DSYNC).toBe(0);
    } finally {
      await durable.close();
      await plain.close();
      await rm(other, { recursive: true, force: true });
    }
  });

  test('fsync off: no fdatasync at all', async () => {
    const proto = await fileHandlePrototype();
    const syncs = jest.spyOn(proto, 'datasync');
    const spool = await openSpool({ fsync: false, segmentBytes: 500 });
    await appendRange(spool, 0, 50);
    expect(syncs).not.toHaveBeenCalled();
    await spool.close();
  });
});

describe('consumers and segment deletion', () => {
  test('separate cursors; a segment is deleted only once both consumers passed it; cursors survive a reopen', async () => {
    let spool = await openSpool({ segmentBytes: 400, consumers: ['a', 'b'] });
    for (let i = 0; i < 40; i += 4) await appendRange(spool, i, i + 4);
    const all = await spool.read(START, 100, 1e9);
    const files = await segmentFiles();
    expect(files.length).toBeGreaterThan(4);
    expect(spool.cursor('a')).toEqual({ segment: all[0]?.position.segment, offset: 0 });

    // a reads everything; b only the first half. Nothing can go yet: b has passed nothing... until it does.
    await spool.acknowledge('a', spool.endPosition);
    expect(spool.pending('a')).toBe(0);
    expect(await segmentFiles()).toEqual(files);
    const half = all[19];
    await spool.acknowledge('b', half?.next ?? START);
    expect(spool.pending('b')).toBe(20);
    const kept = await segmentFiles();
    expect(kept.length).toBeLessThan(files.length);
    // Everything b has not acknowledged is still there.
    expect(ids(await spool.read(spool.cursor('b'), 100, 1e9))).toEqual(range(20, 40));
    expect(ids(await spool.read(START, 100, 1e9))[0]).toBeLessThanOrEqual(20);
    expect(spool.bytes).toBe(all.slice(20).reduce((n, r) => n + r.size, 0));

    // Backwards is ignored.
    const bCursor = spool.cursor('b');
    await spool.acknowledge('b', all[3]?.next ?? START);
    expect(spool.cursor('b')).toEqual(bCursor);
    expect(spool.pending('b')).toBe(20);

    await spool.close();
    spool = await openSpool({ segmentBytes: 400, consumers: ['a', 'b'] });
    expect(spool.pending('a')).toBe(0);
    expect(spool.pending('b')).toBe(20);
    expect(ids(await spool.read(spool.cursor('b'), 100, 1e9))).toEqual(range(20, 40));
    await appendRange(spool, 40, 42);
    expect(ids(await spool.read(spool.cursor('a'), 100, 1e9))).toEqual([40, 41]);
    await spool.acknowledge('b', spool.endPosition);
    await spool.acknowledge('a', spool.endPosition);
    // Only the segment being written is left.
    expect(await segmentFiles()).toHaveLength(1);
    expect(spool.bytes).toBe(0);
    await spool.close();
  });

  test('concurrent acknowledgements of two consumers never delete a segment one of them still needs', async () => {
    const spool = await openSpool({ fsync: false, segmentBytes: 100, consumers: ['a', 'b'] });
    for (let i = 0; i < 40; i++) await spool.append(entry(i));
    const all = await spool.read(START, 100, 1e9);
    expect(new Set(all.map((r) => r.position.segment)).size).toBe(40);
    // a races ahead while b moves one record at a time, all at once.
    await Promise.all([
      spool.acknowledge('a', spool.endPosition),
      ...all.slice(0, 20).map((r) => spool.acknowledge('b', r.next)),
      spool.acknowledge('a', spool.endPosition),
    ]);
    expect(spool.pending('b')).toBe(20);
    expect(ids(await spool.read(spool.cursor('b'), 100, 1e9))).toEqual(range(20, 40));
    expect(await segmentFiles()).toHaveLength(20);
    await spool.close();
  });

  test('an unknown consumer is an error; consumer names are checked', async () => {
    const spool = await openSpool();
    expect(() => spool.cursor('zz')).toThrow(/unknown/);
    await expect(spool.acknowledge('zz', START)).rejects.toThrow(/unknown/);
    await spool.close();
    await expect(openSpool({ consumers: ['Bad/name'] })).rejects.toThrow(/a-z0-9/);
  });
});

describe('dropOldestSegment', () => {
  test('drops the oldest segment, moves cursors in it to the next one, counts what was not acknowledged by someone', async () => {
    const spool = await openSpool({ segmentBytes: 300, consumers: ['a', 'b'] });
    for (let i = 0; i < 30; i += 3) await appendRange(spool, i, i + 3);
    const all = await spool.read(START, 100, 1e9);
    const firstSeg = all[0]?.position.segment;
    const inFirst = all.filter((r) => r.position.segment === firstSeg);
    expect(inFirst.length).toBe(3);
    await spool.acknowledge('a', inFirst[1]?.next ?? START);
    // b acknowledged none of them, so all 3 are lost for b.
    expect(await spool.dropOldestSegment()).toBe(3);
    expect(ids(await spool.read(spool.cursor('a'), 100, 1e9))).toEqual(range(3, 30));
    expect(spool.pending('a')).toBe(27);
    expect(spool.pending('b')).toBe(27);
    // Reading from a position inside the dropped segment continues at the oldest record left.
    expect(ids(await spool.read(inFirst[1]?.position ?? START, 2, 1e9))).toEqual([3, 4]);
    await spool.acknowledge('a', spool.endPosition);
    await spool.acknowledge('b', spool.endPosition);
    // Everything acknowledged; dropping the segment being written rolls first, and loses nothing.
    expect(await spool.dropOldestSegment()).toBe(0);
    await appendRange(spool, 30, 32);
    expect(ids(await spool.read(spool.cursor('b'), 100, 1e9))).toEqual([30, 31]);
    await spool.close();
  });

  test('dropping the only segment rolls to a new one first', async () => {
    const spool = await openSpool({ consumers: ['a'] });
    await appendRange(spool, 0, 5);
    const before = spool.endPosition.segment;
    expect(await spool.dropOldestSegment()).toBe(5);
    expect(spool.pending('a')).toBe(0);
    expect(spool.endPosition).toEqual({ segment: before + 1, offset: 0 });
    await appendRange(spool, 5, 7);
    expect(ids(await spool.read(spool.cursor('a'), 100, 1e9))).toEqual([5, 6]);
    expect(await segmentFiles()).toHaveLength(1);
    await spool.close();
  });
});

describe('space written ahead of the records (fsync on)', () => {
  const MiB = 1024 * 1024;
  /** The newest segment file: its size and whether everything after `from` is zeros. */
  async function newestFile(from: number): Promise<{ size: number; zerosAfter: boolean }> {
    const files = await segmentFiles();
    const data = await readFile(path.join(dir, files[files.length - 1] ?? ''));
    return { size: data.length, zerosAfter: allZeros(data.subarray(from)) };
  }

  test('the segment being written runs on into zeros that reads ignore; close() cuts it back to its last record', async () => {
    const spool = await openSpool({ segmentBytes: 4 * MiB });
    await appendRange(spool, 0, 20);
    const end = spool.endPosition.offset;
    expect(await newestFile(end)).toEqual({ size: MiB, zerosAfter: true });
    expect(ids(await spool.read(START, 100, 1e9))).toEqual(range(0, 20));
    expect(await spool.read(spool.endPosition, 100, 1e9)).toEqual([]);
    expect(spool.totalBytes).toBe(end);
    await spool.close();
    expect((await newestFile(end)).size).toBe(end);
    const reopened = await openSpool({ segmentBytes: 4 * MiB });
    expect(reopened.recoveredFrom).toMatchObject({ records: 20, truncatedBytes: 0, unusedBytes: 0 });
    await reopened.close();
  });

  test('commits land in zeros already on disk (the file never grows for a record below the segment size), and are topped up', async () => {
    const spool = await openSpool({ segmentBytes: 2 * MiB });
    const proto = await fileHandlePrototype();
    const realWrite = proto.write as (this: FileHandle, ...args: unknown[]) => Promise<{ bytesWritten: number }>;
    const grew: string[] = [];
    let zeroWrites = 0;
    jest.spyOn(proto, 'write').mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
      const [buffer, offset, length, position] = args as [Buffer, number, number, number];
      if (!allZeros(buffer.subarray(offset, offset + length))) {
        const { size } = await this.stat();
        if (position + length > size && size < 2 * MiB) grew.push(`${length} bytes at ${position} of ${size}`);
      } else zeroWrites++;
      return realWrite.apply(this, args);
    } as FileHandle['write']);
    const first = spool.endPosition.segment;
    // About 1 KB per record, in batches of 100: crosses the first MiB, then the 2 MiB segment size.
    for (let i = 0; i < 2400; i += 100) await appendRange(spool, i, i + 100, 480);
    expect(grew).toEqual([]);
    // Few, large zero-fill writes (the first segment's first MiB was written at open, before the spy):
    // the first segment's second MiB, and the second segment's first.
    expect(zeroWrites).toBe(2);
    expect(spool.endPosition.segment).toBeGreaterThan(first);
    const all = await spool.read(START, 5000, 1e12);
    expect(ids(all)).toEqual(range(0, 2400));
    const inFirst = all.filter((r) => r.position.segment === first);
    const last = inFirst[inFirst.length - 1];
    const files = await segmentFiles();
    expect((await stat(path.join(dir, files[0] ?? ''))).size).toBe((last?.position.offset ?? 0) + (last?.size ?? 0));
    const { size, zerosAfter } = await newestFile(spool.endPosition.offset);
    expect(zerosAfter).toBe(true);
    expect(size).toBeGreaterThan(spool.endPosition.offset);
    await spool.close();
  });

  test('fsync off: nothing is written ahead; the file is exactly its records', async () => {
    const spool = await openSpool({ fsync: false });
    await appendRange(spool, 0, 20);
    expect((await newestFile(0)).size).toBe(spool.endPosition.offset);
    await spool.close();
  });
});

describe('disk errors', () => {
  test('failed writes are retried with backoff, reported, and the appends resolve in order once the disk recovers', async () => {
    const onError = jest.fn();
    const spool = await openSpool({ onError });
    await appendRange(spool, 0, 2);
    const proto = await fileHandlePrototype();
    const eio = Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    const write = jest.spyOn(proto, 'write').mockRejectedValue(eio);
    const order: number[] = [];
    const appends = range(2, 12).map((i) => spool.append(entry(i)).then(() => order.push(i)));
    while (onError.mock.calls.length < 2) await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual([]);
    expect(onError.mock.calls.map((c) => c[1])).toEqual([1, 2]);
    expect(onError.mock.calls[0]?.[0]).toBe(eio);
    // Arrivals during the outage join the retried batch, behind it.
    const late = appendRange(spool, 12, 15);
    write.mockRestore();
    await Promise.all(appends);
    await late;
    expect(order).toEqual(range(2, 12));
    expect(ids(await spool.read(START, 100, 1e9))).toEqual(range(0, 15));
    await spool.close();
    // Nothing a failed attempt left behind survives.
    const reopened = await openSpool();
    expect(reopened.recoveredFrom.truncatedBytes).toBe(0);
    expect(ids(await reopened.read(START, 100, 1e9))).toEqual(range(0, 15));
    await reopened.close();
  });

  test('a drop during a write outage: the retried batch lands in the new segment, nothing is reported corrupt later', async () => {
    let lost: Promise<number> | undefined;
    // The drop is asked for as the failure is reported, before the retry (whose backoff is jittered, so may be short).
    const onError = jest.fn(() => (lost ??= spool.dropOldestSegment()));
    const spool: RegionSpool = await openSpool({ onError, consumers: ['a'] });
    await appendRange(spool, 0, 3);
    const proto = await fileHandlePrototype();
    const realWrite = proto.write as (this: FileHandle, ...args: unknown[]) => Promise<{ bytesWritten: number }>;
    const write = jest.spyOn(proto, 'write').mockImplementationOnce(async function (this: FileHandle, ...args: unknown[]) {
      const [buffer, offset, length, position] = args as [Buffer, number, number, number];
      await realWrite.call(this, buffer, offset, Math.floor(length / 2), position);
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    });
    const appends = appendRange(spool, 3, 6);
    // The drop rolls between the failed attempt and its retry: the half-written batch must not stay in the old segment.
    await appends;
    expect(await lost).toBe(3);
    expect(recordWrites(write)).toBe(2);
    expect(ids(await spool.read(START, 100, 1e9))).toEqual([3, 4, 5]);
    await spool.close();
    const reopened = await openSpool();
    expect(reopened.recoveredFrom).toMatchObject({ truncatedBytes: 0, corruptSegments: 0, records: 3 });
    await reopened.close();
  });

  test('a segment finished between a failed (half-written) batch and its retry is cut back to its last committed record', async () => {
    const committed: number[] = [];
    let rolled: Promise<void> | undefined;
    const writer: SegmentWriter = new SegmentWriter(
      {
        dir,
        fsync: false,
        segmentBytes: 1 << 20,
        onSegmentCreated: () => undefined,
        onCommitted: (s) => committed.push(...s),
        // Asked for as the failure is reported, so before the retry (whose jittered backoff may be very short).
        onError: () => (rolled ??= writer.roll()),
      },
      7,
    );
    await writer.start();
    const encodable = (i: number) => ({ ...entry(i), jsonBytes: Buffer.byteLength(entry(i).json) });
    await writer.append(encodable(0));
    const proto = await fileHandlePrototype();
    const realWrite = proto.write as (this: FileHandle, ...args: unknown[]) => Promise<{ bytesWritten: number }>;
    jest.spyOn(proto, 'write').mockImplementationOnce(async function (this: FileHandle, ...args: unknown[]) {
      const [buffer, offset, length, position] = args as [Buffer, number, number, number];
      await realWrite.call(this, buffer, offset, Math.floor(length / 2), position);
      throw new Error('ENOSPC');
    });
    await writer.append(encodable(1));
    await rolled;
    expect(writer.segment).toBe(8);
    expect(committed).toHaveLength(2);
    expect((await stat(path.join(dir, 'seg-0000000000000007.wal'))).size).toBe(committed[0]);
    expect((await stat(path.join(dir, 'seg-0000000000000008.wal'))).size).toBe(committed[1]);
    await writer.close();
  });

  test('a failed fdatasync of a finished segment (cut back to its last record) fails the roll, which is retried', async () => {
    const onError = jest.fn();
    const spool = await openSpool({ onError, segmentBytes: 600 });
    await appendRange(spool, 0, 3);
    const proto = await fileHandlePrototype();
    const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    const syncs = jest.spyOn(proto, 'datasync').mockRejectedValueOnce(eio);
    for (let i = 3; i < 12; i += 3) await appendRange(spool, i, i + 3);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(onError.mock.calls[0]?.[0]).toBe(eio);
    expect(syncs.mock.calls.length).toBeGreaterThan(1);
    expect(ids(await spool.read(START, 100, 1e9))).toEqual(range(0, 12));
    await spool.close();
    const reopened = await openSpool({ segmentBytes: 600 });
    expect(reopened.recoveredFrom).toMatchObject({ truncatedBytes: 0, unusedBytes: 0, corruptSegments: 0, records: 12 });
    await reopened.close();
  });

  test('close() gives up on a disk that keeps failing: pending appends reject instead of hanging', async () => {
    const spool = await openSpool({ onError: () => undefined });
    const proto = await fileHandlePrototype();
    jest.spyOn(proto, 'write').mockRejectedValue(new Error('EIO'));
    const failing = expect(spool.append(entry(0))).rejects.toThrow('EIO');
    await new Promise((r) => setTimeout(r, 5));
    await spool.close();
    await failing;
  });
});
