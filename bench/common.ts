/**
 * Shared helpers of the benchmark harness: child processes that announce themselves with one JSON line,
 * /proc readings (CPU time, RSS), percentiles and medians, and the request every load generator sends.
 * Every process started here binds 127.0.0.1 only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import path from 'node:path';

/** The project root, from build/bench/<file>.js or build/bench/<dir>/<file>.js. */
export function projectRoot(fromDir: string): string {
  let dir = fromDir;
  for (let i = 0; i < 5; i++) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`bench: no package.json above ${fromDir}`);
}

/** The value after `--name` on this process's command line, if any. */
export function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `performance.now()` on the epoch scale, so that two processes on this machine share one clock. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

// -------------------------------------------------------------------------------------------------------------
// The request every system gets: an IAM-like bearer token (the gateway reads the caller from its claims), as
// a pipeline or an SDK sends it. The token is made up; nothing checks its signature.

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function benchToken(): string {
  const claims = {
    iam_id: 'iam-ServiceId-5f7c2b8e-1d3a-4b6c-9e0f-a1b2c3d4e5f6',
    id: 'iam-ServiceId-5f7c2b8e-1d3a-4b6c-9e0f-a1b2c3d4e5f6',
    realmid: 'iam',
    jti: '3c9d1f0e-7a2b-4c5d-8e6f-0a1b2c3d4e5f',
    identifier: 'ServiceId-5f7c2b8e-1d3a-4b6c-9e0f-a1b2c3d4e5f6',
    name: 'ci-pipeline-deployer',
    sub: 'ServiceId-5f7c2b8e-1d3a-4b6c-9e0f-a1b2c3d4e5f6',
    sub_type: 'ServiceId',
    authn: { sub: 'ServiceId-5f7c2b8e-1d3a-4b6c-9e0f-a1b2c3d4e5f6', iam_id: 'iam-ServiceId-5f7c2b8e-1d3a-4b6c-9e0f-a1b2c3d4e5f6' },
    account: { boundary: 'global', valid: true, bss: '0f1e2d3c4b5a69788796a5b4c3d2e1f0', frozen: true },
    iat: 1764090000,
    exp: 1764093600,
    iss: 'https://iam.cloud.ibm.com/identity',
    grant_type: 'urn:ibm:params:oauth:grant-type:apikey',
    scope: 'ibm openid',
    client_id: 'default',
    acr: 1,
    amr: ['pwd'],
  };
  const signature = Buffer.alloc(256, 0x5a).toString('base64url');
  return `${b64url({ kid: '20251125', alg: 'RS256' })}.${b64url(claims)}.${signature}`;
}

/** Headers of every benchmark request, whatever the load generator. */
export function benchHeaders(): Record<string, string> {
  return {
    authorization: `Bearer ${benchToken()}`,
    accept: 'application/json',
    'user-agent': 'ce-audit-bench/1.0',
  };
}

export const PROJECT_ID = '4e2a9c1b-7d3f-4a5e-8b6c-0d1e2f3a4b5c';
export const PATH_1KB = '/v2/function_runtimes';
export const PATH_64KB = `/v2/projects/${PROJECT_ID}/apps`;
export const downloadPath = (bytes: number): string => `/v2/_download?bytes=${bytes}`;
export const UPLOAD_PATH = '/v2/_upload';

// -------------------------------------------------------------------------------------------------------------
// Child processes

export interface Child {
  name: string;
  child: ChildProcess;
  pid: number;
  /** The JSON line the process announced itself with. */
  ready: Record<string, unknown>;
  /** stdout and stderr so far (the last 64 KB). */
  output: () => string;
  exited: Promise<number | string>;
  /** Signal, wait up to `graceMs`, then SIGKILL. */
  stop: (signal?: NodeJS.Signals, graceMs?: number) => Promise<number | string>;
}

const live = new Set<ChildProcess>();

/** Kills whatever this process started and is still running (called on exit, whatever the reason). */
export function killAllChildren(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

export interface StartOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** The line that says the process is ready; parsed as JSON when it is. Default: the first line with `listening`. */
  isReady?: (line: string) => boolean;
  /** Readiness by probing a TCP port instead of reading a line. */
  readyPort?: number;
  timeoutMs?: number;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export function startChild(name: string, command: string, args: string[], options: StartOptions = {}): Promise<Child> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let output = '';
  const keep = (c: Buffer): void => {
    output += c.toString('utf8');
    if (output.length > 65536) output = output.slice(-65536);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
    // A program that cannot be started at all: reported like an exit.
    child.once('error', (err) => {
      live.delete(child);
      output += `\n${err.message}`;
      resolve('spawn error');
    });
  });
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<number | string> => {
    if (child.exitCode !== null || child.signalCode !== null) return exited;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const result = await exited;
    clearTimeout(timer);
    return result;
  };
  const isReady = options.isReady ?? ((line: string) => line.includes('listening'));
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start within ${options.timeoutMs ?? 15_000} ms:\n${output}`));
    }, options.timeoutMs ?? 15_000);
    const done = (ready: Record<string, unknown>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ name, child, pid: child.pid as number, ready, output: () => output, exited, stop });
    };
    void exited.then((code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before it was ready:\n${output}`));
    });
    if (options.readyPort !== undefined) {
      const port = options.readyPort;
      const probe = async (): Promise<void> => {
        for (let i = 0; i < 300 && !settled; i++) {
          if (await tcpOpen(port)) return done({ port });
          await sleep(50);
        }
      };
      void probe();
      return;
    }
    let text = '';
    const onData = (c: Buffer): void => {
      text += c.toString('utf8');
      const lines = text.split('\n');
      text = lines.pop() ?? '';
      for (const line of lines) {
        if (!isReady(line)) continue;
        child.stdout?.off('data', onData);
        let parsed: Record<string, unknown> = {};
        try {
          parsed = JSON.parse(line) as Record<string, unknown>;
        } catch {
          parsed = { line };
        }
        done(parsed);
        return;
      }
    };
    child.stdout?.on('data', onData);
  });
}

/** A free TCP port on 127.0.0.1 (for programs that cannot be told to pick one, like nginx). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Runs a command to completion; resolves with its stdout (rejects on a non-zero exit or a timeout). */
export function runToEnd(command: string, args: string[], options: { timeoutMs: number; cwd?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    live.add(child);
    let out = '';
    let err = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr?.on('data', (c: Buffer) => (err += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', (e) => {
      live.delete(child);
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      live.delete(child);
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else
        reject(new Error(`${path.basename(command)} ${args.join(' ')} failed (${code ?? signal}): ${err.slice(-2000)}${out.slice(-2000)}`));
    });
  });
}

// -------------------------------------------------------------------------------------------------------------
// /proc

const CLOCK_TICKS = 100; // USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK)

/** user + system CPU time of a process, in milliseconds; undefined when it is gone. */
export function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: fields are counted after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

export interface MemoryReading {
  rssKb: number;
  hwmKb: number;
}

export function memory(pid: number): MemoryReading | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    if (rss === undefined || hwm === undefined) return undefined;
    return { rssKb: Number(rss), hwmKb: Number(hwm) };
  } catch {
    return undefined;
  }
}

/** Direct children of a process (nginx's workers). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * Busy CPU time of the whole machine (every core), ms: user, nice and system of /proc/stat. Interrupt time is
 * left out: on loopback it is mostly the benchmark's own traffic, and no process is charged for it.
 */
export function machineBusyMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0);
  return (busy * 1000) / CLOCK_TICKS;
}

/**
 * CPU time of this process and everything it started, ms: for each live process of the tree its own time plus
 * that of its children that have exited (cutime, cstime), which is where a finished wrk or worker is counted.
 */
export function treeCpuMs(root: number = process.pid): number {
  let total = 0;
  const stack = [root];
  for (let guard = 0; stack.length > 0 && guard < 10_000; guard++) {
    const pid = stack.pop() as number;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
    } catch {
      continue;
    }
    stack.push(...childPids(pid));
  }
  return (total * 1000) / CLOCK_TICKS;
}

/** CPU used on this machine by processes that are not the benchmark's (another build or test run), in cores. */
export class ForeignCpu {
  private readonly busy0 = machineBusyMs();
  private readonly ours0 = treeCpuMs();
  private readonly t0 = performance.now();

  cores(): number {
    const wall = performance.now() - this.t0;
    const foreign = machineBusyMs() - this.busy0 - (treeCpuMs() - this.ours0);
    return wall > 0 ? Math.max(0, foreign / wall) : 0;
  }
}

/**
 * Waits (at most maxMs) for a moment when other processes use less than `threshold` cores, measured over
 * half-second windows. Returns the foreign load of the last window.
 */
export async function waitForQuietMachine(maxMs: number, threshold = 0.15): Promise<number> {
  const deadline = Date.now() + maxMs;
  let load = 0;
  do {
    const f = new ForeignCpu();
    await sleep(500);
    load = f.cores();
    if (load < threshold) return load;
  } while (Date.now() < deadline);
  return load;
}

/** Samples the RSS of some processes every `everyMs` while a measurement runs; CPU time by difference. */
export class ResourceSampler {
  private timer: NodeJS.Timeout | undefined;
  private maxRssKb = 0;
  private readonly cpuStart: number;
  private readonly startedAt = performance.now();
  private readonly foreign = new ForeignCpu();

  constructor(
    private readonly pids: () => number[],
    everyMs = 100,
  ) {
    this.cpuStart = this.cpuNow();
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private cpuNow(): number {
    return this.pids().reduce((sum, pid) => sum + (cpuMs(pid) ?? 0), 0);
  }

  private sample(): void {
    const rss = this.pids().reduce((sum, pid) => sum + (memory(pid)?.rssKb ?? 0), 0);
    if (rss > this.maxRssKb) this.maxRssKb = rss;
  }

  /**
   * CPU milliseconds used, wall milliseconds, the highest RSS sampled (KB), and the CPU (cores) that processes
   * outside the benchmark used meanwhile.
   */
  stop(): { cpuMs: number; wallMs: number; maxRssKb: number; foreignCores: number } {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
    return {
      cpuMs: this.cpuNow() - this.cpuStart,
      wallMs: performance.now() - this.startedAt,
      maxRssKb: this.maxRssKb,
      foreignCores: this.foreign.cores(),
    };
  }
}

// -------------------------------------------------------------------------------------------------------------
// Statistics

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

/** Nearest-rank percentile of an ascending array (q in 0..1). */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
