import fc from 'fast-check';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RegionSpool } from '../../src/spool/region-spool';
import type { RegionSpoolOptions, SpoolEntry, SpoolPosition, SpoolRecord } from '../../src/spool/types';
import type { Severity } from '../../src/types';

/**
 * Model-based test in the style of Vector's disk buffer tests: random command sequences run against the real spool and
 * against a list in memory, and after every command the durable content, pending counts and byte counts must agree.
 * The model does not know where segments end; where that matters (drop, deletion) it checks the spool against the
 * positions the spool itself reported before the command.
 */

const CONSUMERS = ['a', 'b'] as const;
type Consumer = (typeof CONSUMERS)[number];
const START: SpoolPosition = { segment: 0, offset: 0 };
const HEADER = 20;

interface ModelRecord extends SpoolEntry {
  id: number;
  size: number;
}

interface Model {
  /** Everything ever appended; the index is the id. */
  records: ModelRecord[];
  /** Records before this index are gone from disk: dropped, or deleted after every consumer acknowledged them. */
  firstOnDisk: number;
  /** Per consumer: index of the next record it has not acknowledged. */
  cursors: Record<Consumer, number>;
  /** Per consumer: the last read, for acknowledging part of it. */
  lastRead: Record<Consumer, SpoolRecord[]>;
}

interface Real {
  spool: RegionSpool;
  dir: string;
  options: RegionSpoolOptions;
}

function idOf(r: SpoolRecord): number {
  return (JSON.parse(r.json) as { id: number }).id;
}

function minCursor(m: Model): number {
  return Math.min(...CONSUMERS.map((c) => m.cursors[c]));
}

async function readAll(spool: RegionSpool): Promise<SpoolRecord[]> {
  return spool.read(START, 1e9, 1e12);
}

async function segmentSeqs(dir: string): Promise<number[]> {
  return (await readdir(dir))
    .filter((n) => n.endsWith('.wal'))
    .map((n) => Number(n.slice(4, 20)))
    .sort((a, b) => a - b);
}

/** The durable content is the model's, minus a prefix nobody needs any more; counts and sizes agree. */
async function checkAgreement(m: Model, r: Real): Promise<SpoolRecord[]> {
  const all = await readAll(r.spool);
  const first = all.length > 0 ? idOf(all[0] as SpoolRecord) : m.records.length;
  expect(first).toBeGreaterThanOrEqual(m.firstOnDisk);
  expect(first).toBeLessThanOrEqual(minCursor(m));
  m.firstOnDisk = first;
  const expected = m.records.slice(first);
  expect(
    all.map((rec) => ({ id: idOf(rec), timestampMs: rec.timestampMs, severity: rec.severity, json: rec.json, size: rec.size })),
  ).toEqual(expected.map(({ id, timestampMs, severity, json, size }) => ({ id, timestampMs, severity, json, size })));
  for (const c of CONSUMERS) expect(r.spool.pending(c)).toBe(m.records.length - m.cursors[c]);
  const sizeFrom = (index: number): number => m.records.slice(index).reduce((n, rec) => n + rec.size, 0);
  expect(r.spool.totalBytes).toBe(sizeFrom(first));
  expect(r.spool.bytes).toBe(sizeFrom(minCursor(m)));
  // Finished segments end at their last record; the newest may run on into zeros written ahead of its records (fsync on).
  const seqs = await segmentSeqs(r.dir);
  const file = (seq: number): string => path.join(r.dir, `seg-${String(seq).padStart(16, '0')}.wal`);
  let finished = 0;
  for (const seq of seqs.slice(0, -1)) finished += (await stat(file(seq))).size;
  const newest = await readFile(file(seqs[seqs.length - 1] ?? 0));
  const newestRecords = r.spool.totalBytes - finished;
  expect(newest.length).toBeGreaterThanOrEqual(newestRecords);
  if (!r.options.fsync) expect(newest.length).toBe(newestRecords);
  expect(newest.subarray(newestRecords).every((b) => b === 0)).toBe(true);
  expect(await r.spool.read(r.spool.endPosition, 10, 1e9)).toEqual([]);
  return all;
}

/** Every segment before the one holding the slowest consumer's next record is deleted. */
async function checkPassedSegmentsDeleted(m: Model, r: Real, all: readonly SpoolRecord[]): Promise<void> {
  const slowest = all[minCursor(m) - m.firstOnDisk];
  const keepFrom = slowest ? slowest.position.segment : r.spool.endPosition.segment;
  expect((await segmentSeqs(r.dir))[0]).toBe(keepFrom);
}

class AppendCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly entries: readonly { pad: number; severity: Severity }[]) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const added = this.entries.map(({ pad, severity }, k): ModelRecord => {
      const id = m.records.length + k;
      const json = JSON.stringify({ id, pad: 'ü'.repeat(pad) });
      return { id, timestampMs: 1_700_000_000_000 + id * 7, severity, json, size: HEADER + Buffer.byteLength(json) };
    });
    await Promise.all(added.map(({ timestampMs, severity, json }) => r.spool.append({ timestampMs, severity, json })));
    m.records.push(...added);
    await checkAgreement(m, r);
  }
  toString(): string {
    return `append(${this.entries.length})`;
  }
}

class ReadCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly consumer: Consumer,
    readonly maxEvents: number,
    readonly maxBytes: number,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const got = await r.spool.read(r.spool.cursor(this.consumer), this.maxEvents, this.maxBytes);
    const expected: number[] = [];
    let bytes = 0;
    for (const rec of m.records.slice(m.cursors[this.consumer])) {
      const jsonBytes = rec.size - HEADER;
      if (expected.length >= this.maxEvents || (expected.length > 0 && bytes + jsonBytes > this.maxBytes)) break;
      expected.push(rec.id);
      bytes += jsonBytes;
    }
    expect(got.map(idOf)).toEqual(expected);
    m.lastRead[this.consumer] = got;
    await checkAgreement(m, r);
  }
  toString(): string {
    return `read(${this.consumer}, ${this.maxEvents}, ${this.maxBytes})`;
  }
}

class AcknowledgeCommand implements fc.AsyncCommand<Model, Real> {
  /** `pick` in [0, 1) chooses which record of the last read to acknowledge up to (possibly one behind the cursor). */
  constructor(
    readonly consumer: Consumer,
    readonly pick: number,
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.lastRead[this.consumer].length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    const read = m.lastRead[this.consumer];
    const rec = read[Math.floor(this.pick * read.length)] as SpoolRecord;
    await r.spool.acknowledge(this.consumer, rec.next);
    m.cursors[this.consumer] = Math.max(m.cursors[this.consumer], idOf(rec) + 1);
    const all = await checkAgreement(m, r);
    await checkPassedSegmentsDeleted(m, r, all);
  }
  toString(): string {
    return `ack(${this.consumer}, ${this.pick.toFixed(2)})`;
  }
}

class ReopenCommand implements fc.AsyncCommand<Model, Real> {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.spool.close();
    r.spool = await RegionSpool.open(r.options);
    expect(r.spool.recoveredFrom).toMatchObject({ truncatedBytes: 0, unusedBytes: 0, corruptSegments: 0 });
    const all = await checkAgreement(m, r);
    await checkPassedSegmentsDeleted(m, r, all);
  }
  toString(): string {
    return 'reopen';
  }
}

class DropOldestCommand implements fc.AsyncCommand<Model, Real> {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const before = await readAll(r.spool);
    const oldest = (await segmentSeqs(r.dir))[0];
    const dropped = before.filter((rec) => rec.position.segment === oldest).map(idOf);
    // The oldest segment's records are exactly the first ones on disk.
    expect(dropped).toEqual(before.slice(0, dropped.length).map(idOf));
    const lost = dropped.filter((id) => id >= minCursor(m)).length;
    expect(await r.spool.dropOldestSegment()).toBe(lost);
    m.firstOnDisk += dropped.length;
    for (const c of CONSUMERS) m.cursors[c] = Math.max(m.cursors[c], m.firstOnDisk);
    const all = await checkAgreement(m, r);
    await checkPassedSegmentsDeleted(m, r, all);
  }
  toString(): string {
    return 'dropOldest';
  }
}

const consumer = fc.constantFrom(...CONSUMERS);
const append = fc
  .array(fc.record({ pad: fc.nat(120), severity: fc.constantFrom<Severity>('normal', 'warning', 'critical') }), {
    minLength: 1,
    maxLength: 12,
  })
  .map((entries) => new AppendCommand(entries));
const read = fc
  .tuple(consumer, fc.integer({ min: 1, max: 25 }), fc.integer({ min: 1, max: 2500 }))
  .map(([c, n, b]) => new ReadCommand(c, n, b));
const acknowledge = fc
  .tuple(consumer, fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }))
  .map(([c, p]) => new AcknowledgeCommand(c, p));
// Repeated entries weight the choice: data has to pile up and be consumed for drops and deletions to matter.
const commands = [
  append,
  append,
  append,
  read,
  read,
  read,
  acknowledge,
  acknowledge,
  acknowledge,
  fc.constant(new ReopenCommand()),
  fc.constant(new DropOldestCommand()),
];

test.each([
  { fsync: false, numRuns: 30 },
  // Durable writes, segments filled with zeros ahead of their records and cut back when finished.
  { fsync: true, numRuns: 10 },
])('random command sequences: the spool agrees with an in-memory model (fsync $fsync)', async ({ fsync, numRuns }) => {
  await fc.assert(
    fc.asyncProperty(fc.commands(commands, { maxCommands: 50, size: 'max' }), async (cmds) => {
      const dir = await mkdtemp(path.join(tmpdir(), 'spool-model-'));
      const options: RegionSpoolOptions = { dir, fsync, segmentBytes: 700, consumers: CONSUMERS };
      const real: Real = { spool: await RegionSpool.open(options), dir, options };
      const model: Model = { records: [], firstOnDisk: 0, cursors: { a: 0, b: 0 }, lastRead: { a: [], b: [] } };
      try {
        await fc.asyncModelRun(() => ({ model, real }), cmds);
      } finally {
        await real.spool.close();
        await rm(dir, { recursive: true, force: true });
      }
    }),
    { numRuns },
  );
});
