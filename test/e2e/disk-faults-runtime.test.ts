/**
 * The fault matrix, faults while the gateway runs: a small filesystem that fills and frees (a real tmpfs where this
 * machine lets the test mount one, otherwise ENOSPC injected at Node's file-system API), EIO on the durable write,
 * EROFS, EACCES, the spool directory removed, a slow disk. The gateway is the real process; the faults come from the
 * kernel (tmpfs) or from fs-faults.ts loaded into it. Every case keeps the invariants of expectInvariants, refuses new
 * calls within 1 s of the first failed spool write, fails readiness with the reason, and recovers without a restart.
 */
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  createLoad,
  executedUpstream,
  expectInvariants,
  fillDisk,
  firstSpoolFailure,
  HOLD_MS,
  journalEvents,
  logLines,
  loggedEvents,
  metricsText,
  mountTmpfs,
  readLines,
  readyzBecomes,
  startFaultRun,
  type CallRecord,
  type FaultRun,
} from '../support/disk-faults';
import type { FaultRule } from '../support/fs-faults';
import { until } from '../support/load';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Longest a call may take: a forwarded one waits SPOOL_HOLD_MS at most; the rest is room for a loaded machine. */
const BOUND_MS = HOLD_MS + 2500;

let run: FaultRun | undefined;
afterEach(async () => {
  await run?.close();
  run = undefined;
});

interface Outcome {
  calls: CallRecord[];
  failedAt: number;
  clearedAt: number;
  recoveredAt: number;
  unreadyBody: string;
}

/**
 * Calls flow; the fault is injected; once the spool has failed it is held for `holdFaultMs`, then cleared; calls flow on
 * after the recovery. Checks readiness on the way and the invariants at the end.
 */
async function faultCase(
  r: FaultRun,
  prefix: string,
  inject: () => void | Promise<void>,
  clear: () => void | Promise<void>,
  /** Longer than BOUND_MS: a call that waits for the disk to come back (the hang) cannot pass unnoticed. */
  holdFaultMs = BOUND_MS + 1000,
  /** The fault fails every write until cleared (injected): every new call meanwhile must be refused, at once. */
  steady = true,
): Promise<Outcome> {
  const load = createLoad(r, prefix);
  await sleep(600);
  await inject();
  expect(await until(() => firstSpoolFailure(r.gw.output()) !== undefined, 15_000, 20)).toBe(true);
  const failedAt = firstSpoolFailure(r.gw.output()) as number;
  const unready = await readyzBecomes(r, 503, 2000);
  await sleep(holdFaultMs);
  const clearedAt = Date.now();
  await clear();
  const ready = await readyzBecomes(r, 200, 5000);
  expect(ready).toBeDefined();
  await sleep(600);
  const calls = await load.stop();
  const executed = executedUpstream(r, prefix);
  const refused = calls.filter((c) => c.status === 503).map((c) => c.transactionId);
  const events = [...(await journalEvents(r, [...executed, ...refused])), ...loggedEvents(r.gw.output())];
  expectInvariants({ calls, boundMs: BOUND_MS, events, executed, outputs: [r.gw.output()] });
  await readLines([path.join(r.spoolDir, 'dead-letter')]);
  if (steady) expectRefusedFast(calls.filter((c) => c.started >= failedAt + 1000 && c.ended <= clearedAt - 50));
  // Recovery by the gateway's own clock: the first write that succeeded after the disk did.
  const recovered = logLines(r.gw.output()).lines.find((l) => String(l.msg).startsWith('spool writes recovered'));
  const recoveredAt = Date.parse(String(recovered?.time));
  expect(recoveredAt - clearedAt).toBeLessThanOrEqual(1000);
  // Serving normally again, no restart: every call that started once readiness was back succeeded.
  const after = calls.filter((c) => c.started >= (ready?.at ?? Infinity));
  expect(after.length).toBeGreaterThan(0);
  expect(after.filter((c) => c.status !== 201)).toEqual([]);
  expect(await metricsText(r)).toMatch(/ce_audit_calls_refused_total\{reason="spool_unwritable"\} [1-9]/);
  // Readiness failed at once, saying why and what to do.
  expect(unready?.body).toMatch(/audit events cannot be written to the spool of us-south: SPOOL_DIR .* cannot be written: .* Fix: /);
  process.stdout.write(
    `${prefix}: ${calls.length} calls, ${executed.length} executed, ${refused.length} refused; ` +
      `readiness failed ${unready ? unready.at - failedAt : '-'} ms after the first failed write; recovered ${recoveredAt - clearedAt} ms after the fault cleared\n`,
  );
  return { calls, failedAt, clearedAt, recoveredAt, unreadyBody: unready?.body ?? '' };
}

/** Calls that started at least 1 s after the first failed spool write and before the fault was cleared. */
function duringFault(o: Outcome): CallRecord[] {
  return o.calls.filter((c) => c.started >= o.failedAt + 1000 && c.ended <= o.clearedAt - 50);
}

/** Every new call during a steady fault was refused at once: a 503 in well under a second, never a wait. */
function expectRefusedFast(during: readonly CallRecord[]): void {
  expect(during.length).toBeGreaterThan(5);
  expect(during.filter((c) => c.status !== 503)).toEqual([]);
  expect(during.filter((c) => c.ended - c.started > 500)).toEqual([]);
}

test('a small filesystem fills, stays full, and frees: refused fast, no hang, nothing executed unaudited, no torn line', async () => {
  const tmpfs = await mountTmpfs(3 * 1024 * 1024);
  run = await startFaultRun(tmpfs ? { dataDir: tmpfs.dir } : {});
  const r = run;
  let keepFull: NodeJS.Timeout | undefined;
  const frees: Array<() => void> = [];
  try {
    if (tmpfs) process.stdout.write('filesystem: a real 3 MiB tmpfs\n');
    else process.stdout.write('filesystem: tmpfs cannot be mounted here; ENOSPC injected at the file-system API\n');
    const outcome = await faultCase(
      r,
      'full',
      () => {
        if (!tmpfs) {
          r.plan([{ under: r.dataDir, ops: ['write', 'writeFile'], error: 'ENOSPC', partial: true }]);
          return;
        }
        // Another process fills the disk and keeps it full: whatever the gateway frees is taken again.
        let n = 0;
        frees.push(fillDisk(tmpfs.dir, `filler-${n++}`));
        keepFull = setInterval(() => {
          try {
            frees.push(fillDisk(tmpfs.dir, `filler-${n++}`));
          } catch {
            // Full already.
          }
        }, 10);
      },
      () => {
        clearInterval(keepFull);
        for (const free of frees.splice(0)) free();
        r.plan([]);
      },
      BOUND_MS + 1000,
      // Injected ENOSPC fails every write until cleared; on a real tmpfs the gateway's own cuts free a few blocks now and then.
      !tmpfs,
    );
    // The run: 8 of 9 calls hung. Here no call waits beyond SPOOL_HOLD_MS, and nearly every new call during the
    // outage is refused at once (on a real tmpfs the gateway's own cuts free a few blocks now and then, and a write fits).
    const during = duringFault(outcome);
    expect(during.filter((c) => c.status === 503).length).toBeGreaterThan(during.length / 2);
    expect(during.filter((c) => c.status === 503 && c.ended - c.started > 500)).toEqual([]);
    expect(outcome.unreadyBody).toMatch(/ENOSPC/);
  } finally {
    clearInterval(keepFull);
    for (const free of frees.splice(0)) free();
    await run.close();
    run = undefined;
    await tmpfs?.unmount();
  }
}, 90_000);

const failing = (dir: string, code: string, ops: FaultRule['ops'], extra: Partial<FaultRule> = {}): FaultRule[] => [
  { under: dir, ops, error: code, ...extra },
];

test('EIO on the durable write (the spool writes O_DSYNC: its fsync is the write) and on fdatasync', async () => {
  run = await startFaultRun();
  const r = run;
  const outcome = await faultCase(
    r,
    'eio',
    () => r.plan(failing(r.dataDir, 'EIO', ['write', 'sync'])),
    () => r.plan([]),
  );
  expect(outcome.unreadyBody).toMatch(/I\/O error \(EIO\)/);
}, 60_000);

test('EROFS: the volume turns read-only while the gateway runs, then writable again', async () => {
  run = await startFaultRun();
  const r = run;
  const outcome = await faultCase(
    r,
    'erofs',
    () =>
      r.plan(
        failing(r.dataDir, 'EROFS', ['write', 'sync', 'truncate', 'mkdir', 'rename', 'unlink', 'writeFile', 'open'], { writing: true }),
      ),
    () => r.plan([]),
  );
  expect(outcome.unreadyBody).toMatch(/read-only \(EROFS\)/);
}, 60_000);

test('EACCES: files can no longer be created in the spool (a new segment at the next roll), until permissions are back', async () => {
  run = await startFaultRun();
  const r = run;
  const outcome = await faultCase(
    r,
    'eacces',
    () => r.plan(failing(r.spoolDir, 'EACCES', ['open', 'mkdir', 'writeFile', 'rename'], { writing: true })),
    () => r.plan([]),
  );
  expect(outcome.unreadyBody).toMatch(/permission denied \(EACCES\)/);
}, 60_000);

test('the spool directory removed while running, and not creatable again for a while: refused, then written back', async () => {
  run = await startFaultRun();
  const r = run;
  const regionDir = path.join(r.spoolDir, 'us-south');
  const outcome = await faultCase(
    r,
    'removed',
    async () => {
      // Whoever removed it also keeps it from being made again (EACCES on the parent), for a while.
      r.plan(failing(r.spoolDir, 'EACCES', ['mkdir', 'open'], { writing: true }));
      await sleep(50);
      await rm(regionDir, { recursive: true });
    },
    () => r.plan([]),
  );
  expect(outcome.unreadyBody).toMatch(/was removed while the gateway was writing it|EACCES/);
  // The directory is back, with the segment being written: written back whole from its descriptor when the removal was
  // seen while it was open (test/unit/durable-append.test.ts checks that path), or a new one when a rotation met it.
  expect((await readdir(regionDir)).some((n) => n.endsWith('.wal'))).toBe(true);
}, 60_000);

test('a slow disk (every write takes 700 ms): calls slow down, none fails, memory stays bounded, nothing is lost', async () => {
  run = await startFaultRun({ env: { SPOOL_HOLD_MS: '5000' } });
  const r = run;
  const load = createLoad(r, 'slow', 8);
  await sleep(500);
  const rssBefore = r.gw.peakRss();
  r.plan([{ under: r.dataDir, ops: ['write', 'sync'], delayMs: 700 }]);
  const slowFrom = Date.now();
  await sleep(6000);
  r.plan([]);
  await sleep(500);
  const calls = await load.stop();
  const slowCalls = calls.filter((c) => c.started >= slowFrom + 1000 && c.ended <= slowFrom + 6000);
  expect(slowCalls.length).toBeGreaterThan(5);
  // Slower: each waits for a durable write (and the one under way before it).
  expect(slowCalls.filter((c) => c.ended - c.started < 600)).toEqual([]);
  expect(calls.filter((c) => c.status !== 201)).toEqual([]);
  const growth = r.gw.peakRss() - rssBefore;
  expect(growth).toBeLessThan(64 * 1024 * 1024);
  const executed = executedUpstream(r, 'slow');
  const events = await journalEvents(r, executed);
  expectInvariants({ calls, boundMs: 5000 + 2500, events, executed, outputs: [r.gw.output()] });
  const metrics = await metricsText(r);
  expect(metrics).toMatch(/ce_audit_events_awaiting_disk\{region="us-south"\} \d+/);
  process.stdout.write(
    `slow disk: ${calls.length} calls, p50 during ${slowCalls.map((c) => c.ended - c.started).sort((a, b) => a - b)[Math.floor(slowCalls.length / 2)]} ms, peak RSS +${(growth / 2 ** 20).toFixed(1)} MiB\n`,
  );
}, 60_000);
