/**
 * The rest of `ce-audit` on a real trail: keygen, prove and verify-proof (C2SP tlog-proof), query's filters and
 * table, tail (and tail -f), usage and exit codes.
 */
import { spawnSync } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable, Readable } from 'node:stream';
import { main } from '../../src/cli/main';
import { parseTrustedKey } from '../../src/integrity/note';
import { until } from '../support/load';
import { ceAudit, CLI, keygen, recordTrail, type RecordedTrail } from '../support/trail';

let dir: string;
let trail: RecordedTrail;
let journal: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ce-audit-cli-'));
  trail = await recordTrail(path.join(dir, 'run'), 3);
  journal = path.join(dir, 'run', 'audit');
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Event = {
  id: string;
  action: string;
  outcome: string;
  transactionID?: string;
  target: { id: string; name: string };
  auditChain: { seq: number };
};
const events = (): Event[] => trail.journal.map((l) => JSON.parse(l) as Event);

describe('keygen', () => {
  test('writes the private key (0600), the public key and the verifier key, which name the same key', async () => {
    const out = path.join(dir, 'keys-new');
    const r = keygen(out);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/verifier key: ce-audit-gateway\+[0-9a-f]{8}\+/);
    expect((await stat(path.join(out, 'audit-signing-key.pem'))).mode & 0o777).toBe(0o600);
    const pem = parseTrustedKey(await readFile(path.join(out, 'audit-signing-key.pub.pem'), 'utf8'), 'pem');
    const vkey = parseTrustedKey(await readFile(path.join(out, 'audit-signing-key.vkey'), 'utf8'), 'vkey');
    expect(pem.raw.equals(vkey.raw)).toBe(true);
  });

  test('never overwrites a key: exit 3', async () => {
    const out = path.join(dir, 'keys-twice');
    expect(keygen(out).status).toBe(0);
    const before = await readFile(path.join(out, 'audit-signing-key.pem'), 'utf8');
    const again = keygen(out);
    expect(again.status).toBe(3);
    expect(again.stdout).toMatch(/exists already: keygen never overwrites a key/);
    expect(await readFile(path.join(out, 'audit-signing-key.pem'), 'utf8')).toBe(before);
  });

  test('a private key given as --public-key is refused, saying why', async () => {
    const r = await ceAudit(['verify', '--public-key', trail.privateKeyFile, journal]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/holds a private key: give the public key/);
  });
});

describe('prove and verify-proof', () => {
  const target = (): Event => events().find((e) => e.action.endsWith('.delete')) as Event;

  async function prove(args: string[]): Promise<{ code: number; proof: string; stderr: string }> {
    const r = await ceAudit(['prove', ...args]);
    return { code: r.code, proof: r.stdout, stderr: r.stderr };
  }

  test('prove prints a C2SP tlog-proof; verify-proof accepts it with the event and the public key only', async () => {
    const e = target();
    const { code, proof } = await prove(['--event', e.id, '--public-key', trail.publicKeyFile, journal]);
    expect(code).toBe(0);
    const lines = proof.split('\n');
    expect(lines[0]).toBe('c2sp.org/tlog-proof@v1');
    expect(lines[1]).toBe(`index ${e.auditChain.seq}`);
    expect(proof).toMatch(/\n\nce-audit-gateway\/us-south\/[^\n]+\n\d+\n[A-Za-z0-9+/]{43}=\n\n— ce-audit-gateway \S+\n$/);
    const proofFile = path.join(dir, 'event.tlog-proof');
    await writeFile(proofFile, proof);
    const eventFile = path.join(dir, 'event.json');
    await writeFile(eventFile, `${trail.journal.find((l) => l.includes(e.id)) as string}\n`);
    // The real executable, as an auditor runs it.
    const r = spawnSync(
      process.execPath,
      [CLI, 'verify-proof', '--proof', proofFile, '--event', eventFile, '--public-key', trail.vkeyFile],
      {
        encoding: 'utf8',
      },
    );
    expect(r.stdout).toMatch(/OK: the event is in the log/);
    expect(r.status).toBe(0);
    // The same event as IBM Cloud Logs gives it back (re-serialised) is the same event.
    const fromCloudLogs = trail.cloudLogs.split('\n').find((l) => l.includes(e.id)) as string;
    await writeFile(eventFile, `${fromCloudLogs}\n`);
    expect((await ceAudit(['verify-proof', '--proof', proofFile, '--event', eventFile, '--public-key', trail.publicKeyFile])).code).toBe(0);
  });

  test('verify-proof refuses a changed event, a changed proof, another key, or an unsigned check without --allow-unsigned', async () => {
    const e = target();
    const { proof } = await prove(['--event', e.id, '--public-key', trail.publicKeyFile, journal]);
    const line = trail.journal.find((l) => l.includes(e.id)) as string;
    const run = async (p: string, ev: string, keys: string[]) => {
      const pf = path.join(dir, `p-${Math.random()}.tlog-proof`);
      const ef = path.join(dir, `e-${Math.random()}.json`);
      await writeFile(pf, p);
      await writeFile(ef, ev);
      return ceAudit(['verify-proof', '--proof', pf, '--event', ef, ...keys]);
    };
    const key = ['--public-key', trail.publicKeyFile];
    const changedEvent = await run(proof, line.replace(/"outcome":"(\w+)"/, '"outcome":"unknown"'), key);
    expect(changedEvent.stdout).toMatch(/FAILED: the event's content does not match its hash/);
    expect(changedEvent.code).toBe(1);
    const hashLine = proof.split('\n')[2] as string;
    const changedProof = await run(proof.replace(hashLine, Buffer.alloc(32, 1).toString('base64')), line, key);
    expect(changedProof.stdout).toMatch(/FAILED: the inclusion proof does not lead/);
    expect(changedProof.code).toBe(1);
    const other = path.join(dir, 'other-keys');
    keygen(other);
    const otherKey = await run(proof, line, ['--public-key', path.join(other, 'audit-signing-key.pub.pem')]);
    expect(otherKey.stdout).toMatch(/FAILED: the checkpoint is signed by ce-audit-gateway\+[0-9a-f]{8}, not by a key given/);
    expect(otherKey.code).toBe(1);
    const noKey = await run(proof, line, []);
    expect(noKey.code).toBe(2);
    const wrongIndex = await run(proof.replace(/^index \d+$/m, 'index 0'), line, key);
    expect(wrongIndex.stdout).toMatch(/FAILED: the proof is for index 0/);
  });

  test('prove works on a window of the log that starts after a checkpoint (its frontier stands for what came before)', async () => {
    const all = events();
    const checkpoints = all.filter((x) => x.action === 'ceaudit.checkpoint.create');
    const from = (checkpoints[0] as Event).auditChain.seq;
    const window = trail.journal.filter((l) => (JSON.parse(l) as Event).auditChain.seq >= from);
    const file = path.join(dir, 'window.jsonl');
    await writeFile(file, `${window.join('\n')}\n`);
    const e = all.find((x) => x.auditChain.seq > from + 1 && x.action !== 'ceaudit.checkpoint.create') as Event;
    const { code, proof } = await prove(['--event', e.id, '--public-key', trail.publicKeyFile, file]);
    expect(code).toBe(0);
    expect(proof.split('\n')[1]).toBe(`index ${e.auditChain.seq}`);
    // The window alone still verifies, saying where it starts.
    const v = await ceAudit(['verify', '--public-key', trail.publicKeyFile, file]);
    expect(v.stdout).toMatch(/WINDOW +the input starts at the log's event/);
    expect(v.code).toBe(0);
  });

  test('prove: an unknown id is an input error (3); an event no checkpoint covers yet cannot be proved (1)', async () => {
    expect((await prove(['--event', 'no-such-id', '--public-key', trail.publicKeyFile, journal])).code).toBe(3);
    // Without the checkpoints after it, the last event is not covered.
    const withoutCheckpoints = trail.journal.filter((l) => !l.includes('"ceaudit.checkpoint.create"'));
    const file = path.join(dir, 'no-checkpoints.jsonl');
    await writeFile(file, `${withoutCheckpoints.join('\n')}\n`);
    const last = JSON.parse(withoutCheckpoints[withoutCheckpoints.length - 1] as string) as Event;
    const r = await prove(['--event', last.id, '--public-key', trail.publicKeyFile, file]);
    expect(r.stderr).toMatch(/no trusted checkpoint in the input covers event/);
    expect(r.code).toBe(1);
  });
});

describe('query', () => {
  const json = async (args: string[]): Promise<Event[]> => {
    const r = await ceAudit(['query', '--json', ...args]);
    expect(r.code).toBe(0);
    return r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Event);
  };

  test('every event once across the formats, oldest first, checkpoints left out unless asked for', async () => {
    const inputs = [journal, path.join(dir, 'q-logdna.jsonl'), path.join(dir, 'q-cl.jsonl')];
    await writeFile(inputs[1] as string, trail.logdna);
    await writeFile(inputs[2] as string, trail.cloudLogs);
    const all = await json(inputs);
    const calls = events().filter((e) => e.action !== 'ceaudit.checkpoint.create');
    expect(all.map((e) => e.id).sort()).toEqual(calls.map((e) => e.id).sort());
    const checkpoints = await json(['--action', 'ceaudit.*', journal]);
    expect(checkpoints.length).toBe(events().length - calls.length);
  });

  test('filters: action glob, outcome, project, transaction, initiator, time', async () => {
    const calls = events().filter((e) => e.action !== 'ceaudit.checkpoint.create');
    expect((await json(['--action', 'codeengine.*.delete', journal])).map((e) => e.id)).toEqual(
      calls.filter((e) => e.action.endsWith('.delete')).map((e) => e.id),
    );
    const failures = await json(['--outcome', 'failure', journal]);
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.every((e) => e.outcome === 'failure')).toBe(true);
    const project = /:([^:]+)::$/.exec(calls.find((e) => e.action.endsWith('.delete'))?.target.id ?? '')?.[1] as string;
    const inProject = await json(['--project', project, journal]);
    expect(inProject.length).toBeGreaterThan(1);
    expect(inProject.every((e) => e.target.id.endsWith(`:${project}::`))).toBe(true);
    const tx = calls[3]?.transactionID as string;
    expect((await json(['--transaction', tx, journal])).map((e) => e.transactionID)).toEqual([tx]);
    expect((await json(['--initiator', 'IBMid-550006AB12', journal])).length).toBe(calls.length);
    expect(await json(['--since', '2999-01-01T00:00:00Z', journal])).toEqual([]);
    expect((await json(['--since', '1h', '--until', '2999-01-01T00:00:00Z', journal])).length).toBe(calls.length);
  });

  test('a readable table by default; bad filters are usage errors', async () => {
    const r = await ceAudit(['query', '--outcome', 'failure', journal]);
    expect(r.stdout.split('\n')[0]).toMatch(/^TIME \(UTC\) +ACTION +OUTCOME +CODE +TARGET +PROJECT +INITIATOR +TRANSACTION$/);
    expect(r.stdout).toMatch(/failure +404/);
    expect(r.stdout).toMatch(/└ /);
    expect(r.stdout).toMatch(/\n\d+ events?\n$/);
    expect((await ceAudit(['query', '--outcome', 'maybe', journal])).code).toBe(2);
    expect((await ceAudit(['query', '--since', 'yesterday', journal])).code).toBe(2);
    expect((await ceAudit(['query'])).code).toBe(2);
  });
});

describe('tail', () => {
  test('prints the newest events, and with -f follows the journal: new lines, new days, new regions', async () => {
    const copy = path.join(dir, 'tail-journal');
    await mkdir(path.join(copy, 'us-south'), { recursive: true });
    await writeFile(path.join(copy, 'us-south', 'audit-2026-01-01.jsonl'), `${trail.journal.join('\n')}\n`);
    const last3 = await ceAudit(['tail', '-n', '3', '--json', copy]);
    expect(last3.stdout.trim().split('\n')).toEqual(trail.journal.slice(-3));
    let out = '';
    const stdout = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const controller = new AbortController();
    const running = main(
      ['tail', '-f', '-n', '0', '--json', copy],
      { stdout, stderr: stdout, stdin: Readable.from([]) },
      controller.signal,
    );
    await new Promise((r) => setTimeout(r, 400));
    expect(out).toBe('');
    const [a, b, c] = trail.journal.slice(0, 3) as [string, string, string];
    // Half a line is not printed until its end is written.
    await appendFile(path.join(copy, 'us-south', 'audit-2026-01-01.jsonl'), `${a}\n${b.slice(0, 20)}`);
    await appendFile(path.join(copy, 'us-south', 'audit-2026-01-01.jsonl'), `${b.slice(20)}\n`);
    expect(await until(() => out.split('\n').filter(Boolean).length >= 2, 5000)).toBe(true);
    await mkdir(path.join(copy, 'eu-de'));
    await writeFile(path.join(copy, 'eu-de', 'audit-2026-01-02.jsonl'), `${c}\n`);
    expect(await until(() => out.split('\n').filter(Boolean).length >= 3, 5000)).toBe(true);
    controller.abort();
    expect(await running).toBe(0);
    expect(out.trim().split('\n')).toEqual([a, b, c]);
  });

  test('a missing directory is an input error', async () => {
    expect((await ceAudit(['tail', path.join(dir, 'nope')])).code).toBe(3);
  });
});

test('usage: no command, an unknown command or option (2); --help (0)', async () => {
  expect((await ceAudit([])).code).toBe(2);
  const unknown = await ceAudit(['frobnicate']);
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
  const badOption = await ceAudit(['verify', '--publickey', 'x', journal]);
  expect(badOption.code).toBe(2);
  expect(badOption.stderr).toMatch(/unknown option --publickey[\s\S]*ce-audit verify \[--public-key FILE\]/);
  const help = await ceAudit(['verify', '--help']);
  expect(help.code).toBe(0);
  expect(help.stdout).toMatch(/Exit: 0 no problem, 1 problems found, 2 usage, 3 an input or key could not be read/);
});
