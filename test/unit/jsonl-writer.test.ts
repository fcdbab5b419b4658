import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileSink, journalFile } from '../../src/delivery/sinks/file-sink';
import { JsonlWriter, type JsonlWriterOptions } from '../../src/record/jsonl-writer';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'jsonl-'));
});
afterEach(async () => {
  jest.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

function writer(overrides: Partial<JsonlWriterOptions> = {}): JsonlWriter {
  return new JsonlWriter({ fsync: true, maxPending: 10_000, onError: () => undefined, onRecovered: () => undefined, ...overrides });
}

async function fileHandlePrototype(): Promise<{ datasync: () => Promise<void>; write: () => Promise<unknown> }> {
  const h = await open(path.join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(h) as { datasync: () => Promise<void>; write: () => Promise<unknown> };
  await h.close();
  return proto;
}

test('concurrent appends land in call order, one line each, with far fewer durable writes than lines (group commit)', async () => {
  const proto = await fileHandlePrototype();
  const writes = jest.spyOn(proto, 'write');
  const w = writer();
  const file = path.join(dir, 'a', 'x.jsonl');
  await Promise.all(Array.from({ length: 2000 }, (_, i) => w.append(file, JSON.stringify({ i }))));
  const lines = (await readFile(file, 'utf8')).split('\n');
  expect(lines.pop()).toBe('');
  expect(lines.map((l) => (JSON.parse(l) as { i: number }).i)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
  expect(writes.mock.calls.length).toBeGreaterThan(0);
  expect(writes.mock.calls.length).toBeLessThan(100);
  await w.close();
});

test('with fsync each batch is one write and one fdatasync (far fewer than lines); without, nothing is synced', async () => {
  const proto = await fileHandlePrototype();
  const syncs = jest.spyOn(proto, 'datasync');
  const durable = writer();
  await Promise.all(Array.from({ length: 500 }, (_, i) => durable.append(path.join(dir, 'd.jsonl'), `{"i":${i}}`)));
  expect(syncs.mock.calls.length).toBeGreaterThan(0);
  expect(syncs.mock.calls.length).toBeLessThan(50);
  await durable.close();
  syncs.mockClear();
  const plain = writer({ fsync: false });
  await plain.append(path.join(dir, 'p.jsonl'), '{}');
  await plain.close();
  expect(syncs).not.toHaveBeenCalled();
});

test('a partial last line left by a crash is cut when the file is opened: every line parses', async () => {
  const file = path.join(dir, 'crashed.jsonl');
  await writeFile(file, '{"complete":1}\n{"partial":');
  const repaired: Array<[string, number]> = [];
  const w = writer({ onRepaired: (f, bytes) => repaired.push([f, bytes]) });
  await w.append(file, '{"next":2}');
  await w.close();
  expect(await readFile(file, 'utf8')).toBe('{"complete":1}\n{"next":2}\n');
  expect(repaired).toEqual([[file, '{"partial":'.length]]);
});

test('a file holding only a partial line is emptied', async () => {
  const file = path.join(dir, 'only-partial.jsonl');
  await writeFile(file, '{"partial":');
  const w = writer();
  await w.append(file, '{"n":1}');
  await w.close();
  expect(await readFile(file, 'utf8')).toBe('{"n":1}\n');
});

test('a failing write is retried, in order, until it succeeds; health reflects it', async () => {
  const blocker = path.join(dir, 'blocked');
  await writeFile(blocker, 'a file where a directory must go');
  const errors: string[] = [];
  let recovered = 0;
  const w = writer({ onError: (err) => errors.push((err as NodeJS.ErrnoException).code ?? err.message), onRecovered: () => recovered++ });
  const file = path.join(blocker, 'sub', 'z.jsonl');
  const first = w.append(file, '{"n":1}');
  const second = w.append(file, '{"n":2}');
  const deadline = Date.now() + 3000;
  while (errors.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  expect(errors.length).toBeGreaterThanOrEqual(2);
  expect(errors[0]).toMatch(/ENOTDIR|EEXIST/);
  expect(w.healthy).toBe(false);
  await rm(blocker);
  await Promise.all([first, second]);
  expect(recovered).toBe(1);
  expect(w.healthy).toBe(true);
  expect(await readFile(file, 'utf8')).toBe('{"n":1}\n{"n":2}\n');
  await w.close();
});

test('beyond maxPending an append fails at once instead of growing memory', async () => {
  const w = writer({ maxPending: 3 });
  const file = path.join(dir, 'q.jsonl');
  const accepted = [w.append(file, '1'), w.append(file, '2'), w.append(file, '3')];
  await expect(w.append(file, '4')).rejects.toThrow(/3 events waiting/);
  await Promise.all(accepted);
  await w.close();
  await expect(w.append(file, '5')).rejects.toThrow(/closed/);
});

test('the file sink writes <dir>/<region>/audit-<UTC day>.jsonl, splitting a batch across days', async () => {
  const sink = new FileSink({ dir, fsync: false, onError: () => undefined });
  const rec = (json: string, iso: string) => ({
    json,
    timestampMs: Date.parse(iso),
    severity: 'normal' as const,
    position: { segment: 0, offset: 0 },
    next: { segment: 0, offset: 0 },
    size: 0,
  });
  expect(
    await sink.send({
      region: 'eu-de',
      records: [rec('{"id":"a"}', '2026-11-24T23:59:59.990Z'), rec('{"id":"b"}', '2026-11-25T00:00:00.000Z')],
    }),
  ).toEqual({ kind: 'delivered' });
  expect(await sink.send({ region: 'us-east', records: [rec('{"id":"c"}', '2026-11-25T00:00:00.010Z')] })).toEqual({ kind: 'delivered' });
  await sink.close();
  await sink.close();
  expect(journalFile(dir, 'eu-de', '2026-11-24T23:59:59.99+0000')).toBe(path.join(dir, 'eu-de', 'audit-2026-11-24.jsonl'));
  expect(await readFile(path.join(dir, 'eu-de', 'audit-2026-11-24.jsonl'), 'utf8')).toBe('{"id":"a"}\n');
  expect(await readFile(path.join(dir, 'eu-de', 'audit-2026-11-25.jsonl'), 'utf8')).toBe('{"id":"b"}\n');
  expect(await readFile(path.join(dir, 'us-east', 'audit-2026-11-25.jsonl'), 'utf8')).toBe('{"id":"c"}\n');
});
