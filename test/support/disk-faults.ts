/**
 * Kit for the fault matrix (test/e2e/disk-faults-*.test.ts): the gateway as operators run it (dist/index.js in its own
 * process) in front of a fake Code Engine, its spool and journal on a small tmpfs when this machine lets the test mount
 * one, its file-system calls under a fault plan (fs-faults.ts, loaded with --require), a steady stream of creates, and
 * the invariants every case must keep.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AuditEvent } from '../../src/types';
import { startFakeCodeEngine, type FakeCodeEngine } from './fake-code-engine';
import { writeFaultPlan, type FaultRule } from './fs-faults';
import { spawnGateway, type GatewayProcess } from './gateway-process';
import { transpile } from './transpile';

/** A tmpfs of `sizeBytes` mounted at a new directory, when this machine allows it (root, or a permissive container). */
export async function mountTmpfs(sizeBytes: number): Promise<{ dir: string; unmount: () => Promise<void> } | undefined> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ce-audit-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    await rm(dir, { recursive: true, force: true });
    return undefined;
  }
  return {
    dir,
    unmount: async () => {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Fills the file system holding `dir` until it refuses (ENOSPC), into `dir/<name>`; returns the function that frees it. */
export function fillDisk(dir: string, name = 'filler'): () => void {
  const file = path.join(dir, name);
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    // The last few bytes too: a real full disk has none left.
    try {
      for (;;) writeSync(fd, chunk, 0, 512);
    } catch {
      // Full.
    }
  } finally {
    closeSync(fd);
  }
  return () => unlinkSync(file);
}

let preload: Promise<string> | undefined;

/** fs-faults.ts compiled for the gateway process (once per test file). */
function faultPreload(): Promise<string> {
  preload ??= (async () => {
    const out = await mkdtemp(path.join(tmpdir(), 'ce-audit-faults-build-'));
    await transpile(out, ['test/support/fs-faults.ts']);
    return path.join(out, 'test', 'support', 'fs-faults.js');
  })();
  return preload;
}

export interface CallRecord {
  transactionId: string;
  started: number;
  ended: number;
  /** 0: no answer (timeout, connection error). */
  status: number;
  /** errors[0].code of a gateway error body. */
  code?: string;
}

export interface FaultRun {
  upstream: FakeCodeEngine;
  gw: GatewayProcess;
  dataDir: string;
  spoolDir: string;
  journalDir: string;
  project: string;
  env: Record<string, string>;
  /** Replaces the gateway process's fault plan (it follows within about 20 ms). */
  plan(rules: readonly FaultRule[]): void;
  /** Starts the gateway again on the same directories (after it exited). */
  restart(extra?: Record<string, string>): Promise<GatewayProcess>;
  close(): Promise<void>;
}

export const HOLD_MS = 1500;

/** The gateway in a process with a fault plan, the spool and journal under `dataDir` (a fresh temp dir by default). */
export async function startFaultRun(options: { dataDir?: string; env?: Record<string, string> } = {}): Promise<FaultRun> {
  const upstream = await startFakeCodeEngine();
  const own = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'ce-audit-faults-')));
  const planFile = path.join(await mkdtemp(path.join(tmpdir(), 'ce-audit-plan-')), 'plan.json');
  writeFaultPlan(planFile, []);
  const spoolDir = path.join(dataDir, 'spool');
  const journalDir = path.join(dataDir, 'audit');
  const env: Record<string, string> = {
    PORT: '0',
    ADMIN_PORT: '0',
    CE_API_URL: upstream.url,
    CE_KUBE_API_URL: upstream.url,
    SPOOL_DIR: spoolDir,
    AT_FILE_DIR: journalDir,
    SPOOL_SEGMENT_BYTES: String(64 * 1024),
    SPOOL_HOLD_MS: String(HOLD_MS),
    BATCH_MAX_WAIT_MS: '20',
    DRAIN_TIMEOUT_MS: '3000',
    ACTION_CATALOG: 'current',
    LOG_LEVEL: 'info',
    CE_AUDIT_FS_FAULTS: planFile,
    ...options.env,
  };
  const nodeArgs = ['--require', await faultPreload()];
  const gw = await spawnGateway(env, { nodeArgs });
  const created = await fetch(`${gw.proxyUrl}/v2/projects`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-transaction-id': 'setup-project' },
    body: JSON.stringify({ name: 'faults' }),
  });
  const project = ((await created.json()) as { id: string }).id;
  const run: FaultRun = {
    upstream,
    gw,
    dataDir,
    spoolDir,
    journalDir,
    project,
    env,
    plan: (rules) => writeFaultPlan(planFile, rules),
    restart: async (extra = {}) => {
      run.gw = await spawnGateway({ ...env, ...extra }, { nodeArgs });
      return run.gw;
    },
    close: async () => {
      if (run.gw.child.exitCode === null && run.gw.child.signalCode === null) {
        run.gw.kill('SIGKILL');
        await run.gw.exited;
      }
      await upstream.close();
      await rm(path.dirname(planFile), { recursive: true, force: true });
      if (own) await rm(dataDir, { recursive: true, force: true });
    },
  };
  return run;
}

/** A steady stream of 3 KB config map creates (as in the issue), `concurrency` at a time, until stopped. */
export function createLoad(run: FaultRun, prefix: string, concurrency = 4, clientTimeoutMs = 20_000) {
  const calls: CallRecord[] = [];
  let stopped = false;
  let next = 0;
  const body = (name: string): string => JSON.stringify({ name, data: { payload: 'v'.repeat(3000) } });
  const one = async (): Promise<void> => {
    const transactionId = `${prefix}-${next++}`;
    const record: CallRecord = { transactionId, started: Date.now(), ended: 0, status: 0 };
    calls.push(record);
    try {
      const res = await fetch(`${run.gw.proxyUrl}/v2/projects/${run.project}/config_maps`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-transaction-id': transactionId },
        body: body(transactionId),
        signal: AbortSignal.timeout(clientTimeoutMs),
      });
      const text = await res.text();
      record.status = res.status;
      if (res.status >= 500) record.code = (JSON.parse(text) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
    } catch {
      record.status = 0;
    }
    record.ended = Date.now();
  };
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopped) {
      await one();
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  return {
    calls,
    /** Stops issuing calls and waits for those under way. */
    stop: async (): Promise<CallRecord[]> => {
      stopped = true;
      await Promise.all(loops);
      return calls;
    },
  };
}

interface LogLine {
  time?: string;
  level?: string;
  msg?: string;
  auditEvent?: AuditEvent;
  [key: string]: unknown;
}

/** The gateway's JSON log lines (other output, such as Node's warnings, is kept in `other`). */
export function logLines(output: string): { lines: LogLine[]; other: string[] } {
  const lines: LogLine[] = [];
  const other: string[] = [];
  for (const line of output.split('\n')) {
    if (!line.trim()) continue;
    try {
      lines.push(JSON.parse(line) as LogLine);
    } catch {
      other.push(line);
    }
  }
  return { lines, other };
}

/** When the first spool write failed, by the gateway's log. */
export function firstSpoolFailure(output: string): number | undefined {
  const line = logLines(output).lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('spool write failed'));
  return line?.time ? Date.parse(line.time) : undefined;
}

/**
 * The parsed lines of one JSON Lines file; a torn line throws. Read again (three times, 100 ms apart) before concluding:
 * a read that races one of the gateway's writes sees its end half done for a moment; a torn line stays.
 */
async function wholeLines(file: string): Promise<unknown[]> {
  for (let attempt = 1; ; attempt++) {
    const text = await readFile(file, 'utf8');
    try {
      if (text !== '' && !text.endsWith('\n')) throw new Error(`${file} ends in a torn line: ${JSON.stringify(text.slice(-200))}`);
      return text
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          try {
            return JSON.parse(line) as unknown;
          } catch {
            throw new Error(`${file} has a torn line: ${JSON.stringify(line.slice(0, 200))}`);
          }
        });
    } catch (err) {
      if (attempt >= 3) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Every line of every *.jsonl under `dirs`, each checked to be whole JSON; a torn line fails with its file and text. */
export async function readLines(dirs: readonly string[]): Promise<unknown[]> {
  const out: unknown[] = [];
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const file = path.join(dir, name);
      if ((await stat(file)).isDirectory()) await walk(file);
      else if (name.endsWith('.jsonl')) out.push(...(await wholeLines(file)));
    }
  };
  for (const dir of dirs) await walk(dir);
  return out;
}

/** The journal's events (every line whole), waiting (bounded) until those of `transactionIds` are all there. */
export async function journalEvents(run: FaultRun, transactionIds: Iterable<string> = [], timeoutMs = 15_000): Promise<AuditEvent[]> {
  const wanted = [...transactionIds];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = (await readLines([run.journalDir])) as AuditEvent[];
    const seen = new Set(events.map((e) => e.transactionID));
    if (wanted.every((t) => seen.has(t)) || Date.now() > deadline) return events;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Transaction ids of the creates that reached Code Engine (each an action that happened there). */
export function executedUpstream(run: FaultRun, prefix: string): string[] {
  return run.upstream.requests
    .filter((r) => r.method === 'POST' && String(r.headers['x-correlation-id'] ?? '').startsWith(`${prefix}-`))
    .map((r) => String(r.headers['x-correlation-id']));
}

/** Waits (bounded) until readiness answers `status`; returns when it did, or undefined. */
export async function readyzBecomes(run: FaultRun, status: number, timeoutMs: number): Promise<{ at: number; body: string } | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`${run.gw.adminUrl}/readyz`).catch(() => undefined);
    if (res) {
      const body = await res.text();
      if (res.status === status) return { at: Date.now(), body };
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return undefined;
}

export async function metricsText(run: FaultRun): Promise<string> {
  return (await fetch(`${run.gw.adminUrl}/metrics`)).text();
}

export interface Invariants {
  calls: readonly CallRecord[];
  /** No answer may take longer than this (the documented bound). */
  boundMs: number;
  /** Events the run ends with: the journal's, plus those whose only copy is in a log (a run that had to stop). */
  events: readonly AuditEvent[];
  executed: readonly string[];
  /** Output of every gateway process of the run. */
  outputs: readonly string[];
}

/**
 * What every case of the fault matrix keeps: no crash, every call answered within the bound, every call executed upstream
 * with its event in the end, every refusal for the disk a 503 audit_spool_unwritable that never reached Code Engine.
 * (No torn line: readLines throws on one.)
 */
export function expectInvariants(i: Invariants): void {
  const unanswered = i.calls.filter((c) => c.status === 0 || c.ended - c.started > i.boundMs);
  expect(unanswered).toEqual([]);
  for (const output of i.outputs) {
    const { lines, other } = logLines(output);
    expect(lines.filter((l) => l.level === 'fatal')).toEqual([]);
    expect(other.filter((l) => /Uncaught|Unhandled|Closing file descriptor|FATAL/.test(l))).toEqual([]);
  }
  const withEvent = new Set(i.events.map((e) => e.transactionID));
  expect(i.executed.filter((t) => !withEvent.has(t))).toEqual([]);
  const executed = new Set(i.executed);
  const refused = i.calls.filter((c) => c.status === 503);
  for (const c of refused) expect(c.code).toBe('audit_spool_unwritable');
  expect(refused.filter((c) => executed.has(c.transactionId))).toEqual([]);
  // A refusal is audited too: its event reached the journal once the disk recovered, or the log holds it.
  expect(refused.filter((c) => !withEvent.has(c.transactionId)).map((c) => c.transactionId)).toEqual([]);
  // Only three outcomes: the create happened (201), or the disk refused it, or ... nothing else.
  expect(i.calls.filter((c) => c.status !== 201 && c.status !== 503)).toEqual([]);
}

/** Events the gateway logged as their copy (answered before durable, or not written at shutdown). */
export function loggedEvents(output: string): AuditEvent[] {
  return logLines(output)
    .lines.map((l) => l.auditEvent)
    .filter((e): e is AuditEvent => typeof e === 'object' && e !== null);
}

export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
}
