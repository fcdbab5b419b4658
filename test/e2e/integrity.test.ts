/**
 * Adversarial tests of the signed trail, starting from a real one: the gateway process writes it (journal, LogDNA,
 * Cloud Logs), `ce-audit verify` checks it and the exports made from it; then each kind of tampering must be
 * rejected with its own finding, and each benign transformation must still pass.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { canonicalJson } from '../../src/integrity/canonical-json';
import { recomputeEventHash, type ChainBlock } from '../../src/integrity/chain-block';
import { CHECKPOINT_ACTION } from '../../src/integrity/checkpoint-event';
import { Frontier, leafRangeHash, inclusionProof } from '../../src/integrity/merkle';
import { formatCheckpointBody, formatNote, keyIdOf, parseNote, rawEd25519 } from '../../src/integrity/note';
import { SIGNING_KEY_NAME } from '../../src/integrity/signing-key';
import { CLI, codes, recordTrail, verifyJson, type RecordedTrail } from '../support/trail';

type Event = Record<string, unknown> & { auditChain: ChainBlock; auditCheckpoint?: Record<string, unknown> };

let dir: string;
let trail: RecordedTrail;
let pub: string[];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ce-audit-integrity-'));
  trail = await recordTrail(path.join(dir, 'run'));
  pub = ['--public-key', trail.publicKeyFile];
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileSeq = 0;
async function file(content: string | string[]): Promise<string> {
  const p = path.join(dir, `input-${fileSeq++}.jsonl`);
  await writeFile(p, Array.isArray(content) ? `${content.join('\n')}\n` : content);
  return p;
}

const parse = (line: string): Event => JSON.parse(line) as Event;
const isCheckpoint = (e: Event): boolean => e.action === CHECKPOINT_ACTION;
/** The journal's events by seq (one log: the gateway ran once). */
const events = (): Event[] => trail.journal.map(parse).sort((a, b) => a.auditChain.seq - b.auditChain.seq);
/** An event's line with its hash recomputed, as a forger who knows the format would. */
function rehash(e: Event): Event {
  e.auditChain.hash = recomputeEventHash(e, e.auditChain).toString('base64');
  return e;
}
const line = (e: Event): string => JSON.stringify(e);
/** A checkpoint's signed note, signed again over another body with a key (PKCS#8 PEM). */
function signedNote(body: string, privatePem: string): string {
  const key = createPrivateKey(privatePem);
  const raw = rawEd25519(createPublicKey(key));
  return formatNote(body, [
    { name: SIGNING_KEY_NAME, keyId: keyIdOf(SIGNING_KEY_NAME, raw), signature: sign(null, Buffer.from(body), key) },
  ]);
}

describe('the trail as written', () => {
  test('the gateway wrote one log, several signed checkpoints, and delivered every line to both sinks', () => {
    const all = events();
    const logs = new Set(all.map((e) => e.auditChain.log));
    expect(logs.size).toBe(1);
    expect(all.map((e) => e.auditChain.seq)).toEqual(all.map((_, i) => i));
    const checkpoints = all.filter(isCheckpoint);
    expect(checkpoints.length).toBeGreaterThanOrEqual(3);
    // The last line is the shutdown checkpoint, covering every event before it.
    const last = all[all.length - 1] as Event;
    expect(last.auditCheckpoint).toMatchObject({ reason: 'shutdown', size: all.length - 1 });
    expect(trail.received).toEqual({ logdna: all.length, cloudLogs: all.length });
    expect(trail.gatewayOutput).not.toMatch(/AUDIT_SIGNING_KEY_FILE is not set/);
  });

  test.each([
    ['the journal', () => trail.journal.join('\n')],
    ['an Activity Tracker (LogDNA) export', () => trail.logdna],
    ['IBM Cloud Logs query results', () => trail.cloudLogs],
    ['the raw /v1/query event stream of Cloud Logs', () => trail.sse],
  ])('%s verifies: every event against the signed checkpoints, exit 0', async (_name, content) => {
    const { code, report } = await verifyJson([...pub, await file(content())]);
    expect(report.findings).toEqual([]);
    expect(report.logs).toHaveLength(1);
    const log = report.logs[0] as JsonLog;
    expect(log.findings.filter((f) => f.problem)).toEqual([]);
    expect(log.events).toBe(trail.journal.length);
    expect(log.verified).toBe(trail.journal.length - 1);
    expect(log.coveredUpTo).toBe(trail.journal.length - 1);
    expect(log.checkpoints.verdicts).toEqual({ verified: events().filter(isCheckpoint).length });
    expect(code).toBe(0);
  });

  test('the formats are told apart per input, and all of them together are one trail (copies counted once)', async () => {
    const inputs = [await file(trail.journal), await file(trail.logdna), await file(trail.cloudLogs), await file(trail.sse)];
    const { code, report, stderr } = await verifyJson(['--public-key', trail.vkeyFile, ...inputs]);
    expect(stderr).toBe('');
    expect(report.inputs.map((i) => i.formats)).toEqual([['journal'], ['logdna'], ['cloud-logs'], ['cloud-logs-sse']]);
    expect(codes(report)).toEqual([]);
    expect(codes(report, true)).toEqual(['DUPLICATES']);
    expect(code).toBe(0);
  });

  test('the real executable: exit codes 0, 1 and 2, and a readable report', async () => {
    const good = await file(trail.journal);
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    const ok = run('verify', '--public-key', trail.publicKeyFile, good);
    expect(ok.stdout).toMatch(/OK: no problem found/);
    expect(ok.status).toBe(0);
    const bad = run('verify', '--public-key', trail.publicKeyFile, await file(trail.journal.slice(0, 3).concat(trail.journal.slice(4))));
    expect(bad.stdout).toMatch(/PROBLEM MISSING .*seq 3/);
    expect(bad.status).toBe(1);
    expect(run('verify').status).toBe(2);
    expect(run('verify', '--public-key', path.join(dir, 'nope.pem'), good).status).toBe(3);
  });
});

type JsonLog = Awaited<ReturnType<typeof verifyJson>>['report']['logs'][number];

describe('benign transformations still pass', () => {
  /** Every object's members in reverse order. */
  const reorder = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(reorder);
    if (v === null || typeof v !== 'object') return v;
    return Object.fromEntries(
      Object.entries(v)
        .reverse()
        .map(([k, x]) => [k, reorder(x)]),
    );
  };

  test.each([
    ['keys reordered', (lines: string[]) => lines.map((l) => JSON.stringify(reorder(JSON.parse(l))))],
    ['whitespace changed', (lines: string[]) => lines.map((l) => JSON.stringify(JSON.parse(l), null, '\t').replace(/\n/g, '  '))],
    [
      'lines shuffled',
      (lines: string[]) =>
        lines
          .map((l, i) => [l, (i * 7919) % 97] as const)
          .sort((a, b) => a[1] - b[1])
          .map(([l]) => l),
    ],
    ['a line duplicated', (lines: string[]) => [...lines.slice(0, 5), lines[4] as string, ...lines.slice(5)]],
    [
      'lines of other applications mixed in',
      (lines: string[]) =>
        lines.flatMap((l, i) => [
          l,
          ...(i % 4 === 0
            ? [
                'plain text from another application',
                JSON.stringify({ level: 'info', msg: 'another app', time: Date.now() }),
                JSON.stringify({
                  eventType: 'activity',
                  action: 'iam-identity.apikey.create',
                  outcome: 'success',
                  eventTime: '2026-01-01T00:00:00.00+0000',
                }),
              ]
            : []),
        ]),
    ],
  ])('%s', async (_name, transform) => {
    const { code, report } = await verifyJson([...pub, await file(transform([...trail.journal]))]);
    expect(codes(report)).toEqual([]);
    expect(report.logs[0]?.verified).toBe(trail.journal.length - 1);
    expect(code).toBe(0);
  });

  test('an export whose service re-serialised every event (Cloud Logs) and one that kept the bytes (LogDNA), shuffled together', async () => {
    const mixed = [...trail.cloudLogs.trim().split('\n'), ...trail.logdna.trim().split('\n')].reverse();
    const { code, report } = await verifyJson([...pub, await file(mixed)]);
    expect(codes(report)).toEqual([]);
    expect(code).toBe(0);
  });
});

describe('tampering is rejected with its finding', () => {
  /** A middle event that is not a checkpoint. */
  const target = (): Event => events().find((e, i) => i > 3 && !isCheckpoint(e) && typeof e.target === 'object') as Event;
  const seqOf = (e: Event): number => e.auditChain.seq;
  const replace = (lines: string[], seq: number, by: string[]): string[] =>
    lines.flatMap((l) => (parse(l).auditChain.seq === seq ? by : [l]));

  async function expectFinding(lines: string[], code: string, seq?: number, args: string[] = pub): Promise<JsonLog> {
    const r = await verifyJson([...args, await file(lines)]);
    expect(codes(r.report)).toContain(code);
    const log = r.report.logs[0] as JsonLog;
    const found = [...log.findings, ...r.report.findings].filter((f) => f.code === code);
    if (seq !== undefined) {
      expect(found.some((f) => (f.seqs ?? []).some((s) => (typeof s === 'number' ? s === seq : s[0] <= seq && seq <= s[1])))).toBe(true);
    }
    expect(r.code).toBe(1);
    return log;
  }

  test('one byte of one field changed: ALTERED, naming the event', async () => {
    const e = target();
    const original = trail.journal.find((l) => parse(l).auditChain.seq === seqOf(e)) as string;
    const changed = original.replace(`"outcome":"${String(e.outcome)}"`, `"outcome":"${e.outcome === 'success' ? 'succesS' : 'failurE'}"`);
    expect(changed).not.toBe(original);
    expect(changed.length).toBe(original.length);
    await expectFinding(replace(trail.journal, seqOf(e), [changed]), 'ALTERED', seqOf(e));
  });

  test('a changed event beside an intact copy of it (two exports): ALTERED, and which fields differ', async () => {
    const e = target();
    const altered = { ...e, outcome: 'success', reason: { reasonCode: 200, reasonType: 'OK' } };
    const log = await expectFinding([...trail.journal, line(altered as Event)], 'ALTERED', seqOf(e));
    const f = log.findings.find((x) => x.code === 'ALTERED');
    expect(f?.fields).toEqual(expect.arrayContaining(['reason.reasonCode', 'reason.reasonType']));
  });

  test('the fields an Activity Tracker export shows beside _line changed: VIEW_ALTERED, naming them', async () => {
    const lines = trail.logdna.trim().split('\n');
    const i = lines.findIndex((l) => /^codeengine\.[a-z]+\.delete$/.test((JSON.parse(l) as { action: string }).action));
    const row = JSON.parse(lines[i] as string) as Record<string, unknown>;
    row.outcome = 'failure';
    lines[i] = JSON.stringify(row);
    const log = await expectFinding(lines, 'VIEW_ALTERED');
    expect(log.findings.find((f) => f.code === 'VIEW_ALTERED')?.fields).toEqual(['outcome']);
  });

  test('one byte of _line changed in an Activity Tracker export: ALTERED', async () => {
    const lines = trail.logdna.trim().split('\n');
    const i = lines.findIndex((l) => /^codeengine\.[a-z]+\.delete$/.test((JSON.parse(l) as { action: string }).action));
    const row = JSON.parse(lines[i] as string) as { _line: string };
    row._line = row._line.replace('"severity":"critical"', '"severity":"normal"');
    lines[i] = JSON.stringify(row);
    await expectFinding(lines, 'ALTERED');
  });

  test('one event dropped: MISSING, that sequence number', async () => {
    const seq = seqOf(target());
    await expectFinding(replace(trail.journal, seq, []), 'MISSING', seq);
  });

  test('two events dropped in two places: each gap counted', async () => {
    const seq = seqOf(target());
    const log = await expectFinding(replace(replace(trail.journal, seq, []), seq + 5, []), 'MISSING', seq + 5);
    expect(log.findings.filter((f) => f.code === 'MISSING').map((f) => f.message)).toEqual(
      expect.arrayContaining([expect.stringMatching(/2 gaps in all, 2 events/)]),
    );
  });

  test('the newest events dropped (the checkpoints kept): TRUNCATED', async () => {
    const all = events();
    const last = all.length - 1;
    const lines = all.filter((e) => e.auditChain.seq < last - 3 || e.auditChain.seq === last).map(line);
    await expectFinding(lines, 'TRUNCATED', last - 1);
  });

  test('an event inserted (well-formed, chained, its hash recomputed): FORGED', async () => {
    const e = target();
    const forged = rehash({
      ...structuredClone(e),
      id: '01900000-0000-7000-8000-000000000000',
      outcome: 'success',
      message: 'Code Engine: nothing happened',
    });
    await expectFinding([...trail.journal, line(forged)], 'FORGED', seqOf(e));
  });

  test("an event's sequence number changed: ALTERED, saying so", async () => {
    const e = target();
    const moved = structuredClone(e);
    moved.auditChain.seq = seqOf(e) + 1000;
    const log = await expectFinding(replace(trail.journal, seqOf(e), [line(moved)]), 'ALTERED', seqOf(e));
    expect(log.findings.find((f) => f.code === 'ALTERED')?.message).toMatch(
      new RegExp(`sequence number was changed: it claims seq ${seqOf(e) + 1000} but is the log's event ${seqOf(e)}`),
    );
    expect(log.findings.some((f) => f.code === 'MISSING')).toBe(false);
  });

  test('a checkpoint signed with another key: UNKNOWN_KEY', async () => {
    const other = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const cp = events().filter(isCheckpoint)[1] as Event;
    const note = parseNote(String(cp.auditCheckpoint?.note));
    const resigned = rehash({ ...structuredClone(cp), auditCheckpoint: { ...cp.auditCheckpoint, note: signedNote(note.body, other) } });
    await expectFinding(replace(trail.journal, seqOf(cp), [line(resigned)]), 'UNKNOWN_KEY', seqOf(cp));
  });

  test('a checkpoint whose signature was tampered with: BAD_SIGNATURE', async () => {
    const cp = events().filter(isCheckpoint)[1] as Event;
    const note = String(cp.auditCheckpoint?.note);
    const sig = /— \S+ (\S+)\n$/.exec(note)?.[1] as string;
    const flipped = Buffer.from(sig, 'base64');
    flipped[10] = (flipped[10] as number) ^ 0x01;
    const bad = rehash({
      ...structuredClone(cp),
      auditCheckpoint: { ...cp.auditCheckpoint, note: note.replace(sig, flipped.toString('base64')) },
    });
    await expectFinding(replace(trail.journal, seqOf(cp), [line(bad)]), 'BAD_SIGNATURE', seqOf(cp));
  });

  test('events rewritten with every hash and link recomputed: the signed checkpoint after them, ROOT_MISMATCH', async () => {
    const all = events();
    const e = target();
    const from = seqOf(e);
    let prev = (all[from - 1] as Event).auditChain.hash;
    const rewritten = all.map((x) => {
      if (x.auditChain.seq < from) return line(x);
      const y = structuredClone(x);
      if (y.auditChain.seq === from) y.outcome = y.outcome === 'success' ? 'failure' : 'success';
      y.auditChain.prev = prev;
      rehash(y);
      prev = y.auditChain.hash;
      return line(y);
    });
    const nextCheckpoint = all.find((x) => x.auditChain.seq > from && isCheckpoint(x)) as Event;
    await expectFinding(rewritten, 'ROOT_MISMATCH', seqOf(nextCheckpoint));
  });

  test('a checkpoint signed by the real key over a root that does not match: ROOT_MISMATCH', async () => {
    const cp = events().filter(isCheckpoint)[1] as Event;
    const body = formatCheckpointBody({ origin: cp.auditChain.log, size: seqOf(cp), root: Buffer.alloc(32, 7) });
    const privatePem = await readFile(trail.privateKeyFile, 'utf8');
    const wrong = rehash({
      ...structuredClone(cp),
      auditCheckpoint: { ...cp.auditCheckpoint, note: signedNote(body, privatePem), root: Buffer.alloc(32, 7).toString('base64') },
    });
    await expectFinding(replace(trail.journal, seqOf(cp), [line(wrong)]), 'ROOT_MISMATCH', seqOf(cp));
  });

  test('two checkpoints of the same log that disagree, both signed by the real key (a fork): FORK', async () => {
    const all = events();
    const cp = all.filter(isCheckpoint)[1] as Event;
    const size = seqOf(cp);
    // Another history: event size-1 replaced, the tree, its frontier and proof computed over it, signed.
    const forgedLast = rehash({ ...structuredClone(all[size - 1] as Event), outcome: 'unknown' });
    const leaves = all.slice(0, size).map((x, i) => Buffer.from(i === size - 1 ? forgedLast.auditChain.hash : x.auditChain.hash, 'base64'));
    let frontier = Frontier.EMPTY;
    for (const leaf of leaves) frontier = frontier.append(leaf);
    const body = formatCheckpointBody({ origin: cp.auditChain.log, size, root: frontier.root() });
    const privatePem = await readFile(trail.privateKeyFile, 'utf8');
    const forkCp = structuredClone(cp);
    forkCp.auditChain.prev = forgedLast.auditChain.hash;
    forkCp.auditCheckpoint = {
      ...cp.auditCheckpoint,
      note: signedNote(body, privatePem),
      root: frontier.root().toString('base64'),
      frontier: frontier.hashes().map((h) => h.toString('base64')),
      lastProof: inclusionProof(size - 1, size, leafRangeHash(leaves)).map((h) => h.toString('base64')),
    };
    rehash(forkCp);
    await expectFinding([...trail.journal, line(forkCp)], 'FORK');
  });

  test('without --public-key the signatures are not checked: NOT_CHECKED; with another key: UNKNOWN_KEY', async () => {
    await expectFinding(trail.journal, 'NOT_CHECKED', undefined, []);
    const otherDir = path.join(dir, 'other-key');
    const other = generateKeyPairSync('ed25519');
    await writeFile(`${otherDir}.pub.pem`, other.publicKey.export({ type: 'spki', format: 'pem' }).toString());
    await expectFinding(trail.journal, 'UNKNOWN_KEY', undefined, ['--public-key', `${otherDir}.pub.pem`]);
  });

  test('a verifier that skipped the content check would pass a changed event: this one does not (canonical form compared)', async () => {
    // Changing a value to an equal one in another JSON spelling is benign; changing the value is not.
    const e = target();
    const l = trail.journal.find((x) => parse(x).auditChain.seq === seqOf(e)) as string;
    const same = l.replace(/"reasonCode":(\d+)/, (_m, n: string) => `"reasonCode":${n}.0`);
    const other = l.replace(/"reasonCode":(\d+)/, (_m, n: string) => `"reasonCode":${Number(n) + 1}`);
    expect(codes((await verifyJson([...pub, await file(replace(trail.journal, seqOf(e), [same]))])).report)).toEqual([]);
    await expectFinding(replace(trail.journal, seqOf(e), [other]), 'ALTERED', seqOf(e));
    expect(canonicalJson(JSON.parse(same))).toBe(canonicalJson(JSON.parse(l)));
  });
});
