/**
 * The fault matrix, where the case is about the process: SIGTERM on a full disk and on a disk that hangs (bounded exit,
 * what could not be written reported), kill -9 during a segment rotation and during a journal write (nothing torn,
 * nothing lost after the restart), and start-up on a disk that cannot be written (exit 2, the directory and the fix).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  createLoad,
  executedUpstream,
  expectInvariants,
  fillDisk,
  HOLD_MS,
  journalEvents,
  logLines,
  loggedEvents,
  mountTmpfs,
  startFaultRun,
  type CallRecord,
  type FaultRun,
} from '../support/disk-faults';
import { writeFaultPlan } from '../support/fs-faults';
import { ENTRY } from '../support/gateway-process';
import { transpile } from '../support/transpile';
import { until } from '../support/load';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DRAIN_MS = 3000;

let run: FaultRun | undefined;
afterEach(async () => {
  await run?.close();
  run = undefined;
});

/**
 * The shutdown report: one of the last lines gives the count and ids of the events the spool could not take, each of
 * them copied whole in a log line before; the exit code says whether there were any. Returns the ids.
 */
function expectShutdownReport(output: string, exitCode: number | null): string[] {
  const { lines } = logLines(output);
  const summary = lines.find((l) => String(l.msg).startsWith('shutdown:') && Array.isArray(l.ids));
  const unwritten = (summary?.ids ?? []) as string[];
  expect(exitCode).toBe(unwritten.length > 0 ? 1 : 0);
  if (summary) {
    expect(summary.count).toBe(unwritten.length);
    const copies = new Set(loggedEvents(output).map((e) => e.id));
    expect(unwritten.filter((id) => !copies.has(id))).toEqual([]);
    expect(lines.indexOf(summary)).toBeGreaterThan(lines.length - 4);
  }
  return unwritten;
}

/** Started again on a healthy disk: every call executed upstream has its event, in the journal or copied in the log. */
async function expectInvariantsAfterRestart(r: FaultRun, prefix: string, calls: CallRecord[], first: string): Promise<void> {
  r.plan([]);
  await r.restart();
  const executed = executedUpstream(r, prefix);
  const logged = loggedEvents(first);
  // Those with a copy in the first process's log need not be waited for in the journal.
  const inLog = new Set(logged.map((e) => e.transactionID));
  const events = [
    ...(await journalEvents(
      r,
      executed.filter((t) => !inLog.has(t)),
      10_000,
    )),
    ...logged,
  ];
  expectInvariants({ calls, boundMs: HOLD_MS + 2500, events, executed, outputs: [first, r.gw.output()] });
}

describe('SIGTERM', () => {
  test('on a full disk: exits within DRAIN_TIMEOUT_MS + 2 s; what could not be written is in the last log lines, each event whole', async () => {
    const tmpfs = await mountTmpfs(3 * 1024 * 1024);
    run = await startFaultRun(tmpfs ? { dataDir: tmpfs.dir } : {});
    const r = run;
    let free: (() => void) | undefined;
    try {
      const load = createLoad(r, 'term');
      await sleep(500);
      // Full, and the calls under way stuck on it: their events wait in memory when the gateway is told to stop.
      if (tmpfs) free = fillDisk(tmpfs.dir);
      r.plan([{ under: r.dataDir, ops: ['write', 'writeFile'], error: 'ENOSPC', partial: true }]);
      expect(await until(() => r.gw.output().includes('spool write failed'), 10_000, 20)).toBe(true);
      // The calls under way are answered within SPOOL_HOLD_MS; their events wait in memory for a disk that stays full.
      await sleep(HOLD_MS / 2);
      const calls = await load.stop();
      const stoppingAt = Date.now();
      r.gw.kill('SIGTERM');
      const exit = await r.gw.exited;
      const took = Date.now() - stoppingAt;
      expect(took).toBeLessThan(DRAIN_MS + 2000);
      const first = r.gw.output();
      const unwritten = expectShutdownReport(first, exit.code);
      process.stdout.write(`SIGTERM on a full disk: exited ${exit.code} after ${took} ms, ${unwritten.length} events reported unwritten\n`);
      free?.();
      free = undefined;
      await expectInvariantsAfterRestart(r, 'term', calls, first);
    } finally {
      free?.();
      await run.close();
      run = undefined;
      await tmpfs?.unmount();
    }
  }, 90_000);

  test('on a disk that hangs (writes never return): still exits within DRAIN_TIMEOUT_MS + 2 s and reports what is not written', async () => {
    run = await startFaultRun();
    const r = run;
    const load = createLoad(r, 'hang');
    await sleep(500);
    r.plan([{ under: r.dataDir, ops: ['write', 'sync', 'truncate'], hang: true }]);
    // The calls under way wait SPOOL_HOLD_MS, are answered, and their events wait for a disk that never answers.
    await sleep(HOLD_MS + 500);
    const calls = await load.stop();
    const stoppingAt = Date.now();
    r.gw.kill('SIGTERM');
    const exit = await r.gw.exited;
    const took = Date.now() - stoppingAt;
    expect(took).toBeLessThan(DRAIN_MS + 2000);
    const first = r.gw.output();
    const unwritten = expectShutdownReport(first, exit.code);
    expect(unwritten.length).toBeGreaterThan(0);
    // Executed calls were answered within the hold, and each has its event: written before the hang, or logged.
    await expectInvariantsAfterRestart(r, 'hang', calls, first);
    process.stdout.write(`SIGTERM on a hung disk: exited ${exit.code} after ${took} ms, ${unwritten.length} events reported unwritten\n`);
  }, 60_000);
});

describe('kill -9', () => {
  test('during a segment rotation (the next segment being created): the restart loses nothing and reports nothing corrupt', async () => {
    run = await startFaultRun();
    const r = run;
    const load = createLoad(r, 'rot');
    await sleep(800);
    // The next segment's creation takes seconds: the rotation is under way (the old segment cut and closed) when killed.
    r.plan([{ under: r.spoolDir, ops: ['open'], name: '^seg-\\d+\\.wal$', writing: true, delayMs: 60_000 }]);
    expect(await until(() => load.calls.some((c) => c.ended === 0 && Date.now() - c.started > 500), 10_000, 20)).toBe(true);
    r.gw.kill('SIGKILL');
    await r.gw.exited;
    const calls = await load.stop();
    const first = r.gw.output();
    r.plan([]);
    await r.restart();
    const { lines } = logLines(r.gw.output());
    expect(lines.filter((l) => l.msg === 'spool problem')).toEqual([]);
    // Calls cut by the kill got no answer: their events were never durable, and no client saw them succeed. Every call
    // answered before the kill has its event after the restart.
    const answered = calls.filter((c) => c.status !== 0);
    const acknowledged = answered.filter((c) => c.status === 201).map((c) => c.transactionId);
    const events = await journalEvents(r, acknowledged, 10_000);
    expectInvariants({ calls: answered, boundMs: HOLD_MS + 2500, events, executed: acknowledged, outputs: [first, r.gw.output()] });
    const executed = executedUpstream(r, 'rot');
    process.stdout.write(
      `kill -9 in a rotation: ${acknowledged.length} calls acknowledged, ${executed.length} executed upstream, ${events.length} journal lines after the restart\n`,
    );
  }, 60_000);

  test('during a journal write (half of it on disk): the restart cuts the torn line, every line parses, every event arrives', async () => {
    run = await startFaultRun();
    const r = run;
    const load = createLoad(r, 'jw');
    expect(await until(async () => (await journalText(r)).length > 0, 10_000, 20)).toBe(true);
    // The journal's next write lands in part, and the process dies before anything else happens to that file.
    r.plan([{ under: r.journalDir, ops: ['write'], partial: true, hang: true }]);
    // Torn, and staying so (a read that races an ordinary write can see it half done for a moment).
    const tornNow = async (): Promise<boolean> => !(await journalText(r)).endsWith('\n');
    expect(await until(async () => (await tornNow()) && (await sleep(200), await tornNow()), 10_000, 20)).toBe(true);
    r.gw.kill('SIGKILL');
    await r.gw.exited;
    const torn = await journalText(r);
    expect(torn.endsWith('\n')).toBe(false);
    const calls = await load.stop();
    const first = r.gw.output();
    r.plan([]);
    await r.restart();
    const answered = calls.filter((c) => c.status !== 0);
    const acknowledged = answered.filter((c) => c.status === 201).map((c) => c.transactionId);
    const events = await journalEvents(r, acknowledged, 10_000);
    expectInvariants({ calls: answered, boundMs: HOLD_MS + 2500, events, executed: acknowledged, outputs: [first, r.gw.output()] });
    expect(logLines(r.gw.output()).lines.some((l) => /partial last line/.test(JSON.stringify(l)))).toBe(true);
    process.stdout.write(
      `kill -9 in a journal write: ${acknowledged.length} calls acknowledged, ${events.length} journal lines after the restart\n`,
    );
  }, 60_000);
});

async function journalText(r: FaultRun): Promise<string> {
  const dir = path.join(r.journalDir, 'us-south');
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.jsonl'));
  let text = '';
  for (const f of files.sort()) text += await readFile(path.join(dir, f), 'utf8');
  return text;
}

describe('start-up on a disk that cannot be written', () => {
  let dir: string;
  let preload: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ce-audit-startup-'));
    await transpile(path.join(dir, 'build'), ['test/support/fs-faults.ts']);
    preload = path.join(dir, 'build', 'test', 'support', 'fs-faults.js');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function start(
    setting: 'SPOOL_DIR' | 'AT_FILE_DIR',
    code: string,
  ): Promise<{ code: number | null; stderr: string; target: string }> {
    const data = await mkdtemp(path.join(dir, 'data-'));
    const target = path.join(data, setting === 'SPOOL_DIR' ? 'spool' : 'audit');
    const plan = path.join(data, 'plan.json');
    writeFaultPlan(plan, [{ under: target, ops: ['open', 'write', 'sync', 'mkdir', 'writeFile'], error: code, writing: true }]);
    const child = spawn(process.execPath, ['--require', preload, ENTRY], {
      env: {
        PATH: process.env.PATH ?? '',
        PORT: '0',
        ADMIN_PORT: '0',
        SPOOL_DIR: path.join(data, 'spool'),
        AT_FILE_DIR: path.join(data, 'audit'),
        CE_AUDIT_FS_FAULTS: plan,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    return { code: exited, stderr, target };
  }

  test.each([
    ['SPOOL_DIR', 'ENOSPC', /the disk is full \(ENOSPC\)\. Fix: free space on that volume/],
    ['SPOOL_DIR', 'EROFS', /the file system is read-only \(EROFS\)\. Fix: mount a writable volume there/],
    ['SPOOL_DIR', 'EACCES', /permission denied \(EACCES\)\. Fix: make it writable by the gateway's user \(chown \d+:\d+/],
    ['SPOOL_DIR', 'EIO', /the disk reported an I\/O error \(EIO\)\. Fix: check the volume/],
    ['AT_FILE_DIR', 'EROFS', /the file system is read-only \(EROFS\)/],
  ] as const)(
    '%s with %s: exit code 2 and a message naming the directory and the fix',
    async (setting, code, fix) => {
      const result = await start(setting, code);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`ce-audit-gateway: ${setting} ${JSON.stringify(result.target)} cannot be written: `);
      expect(result.stderr).toMatch(fix);
      expect(result.stderr).toMatch(/or set (SPOOL_DIR|AT_FILE_DIR) to a directory on a disk that can be written/);
    },
    30_000,
  );
});
