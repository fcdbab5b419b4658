/**
 * Load generator tasks that wrk / autocannon do not do, run in their own process (never in the process under
 * test): `node build/bench/load-worker.js <task.json>`; the result is written to the task's `out` file.
 *
 *  open      open-loop at a fixed rate: request i is scheduled at start + i/rate whatever happened to the
 *            earlier ones, and its latency is measured from that scheduled time (no coordinated omission: a
 *            stalled server makes every request scheduled meanwhile late). Bounded by count and time.
 *  calls     N calls at a fixed concurrency (closed loop), for the event scenarios.
 *  warm      a few calls to each of several systems, one after the other (warm-up before measuring).
 *  download  one streamed GET of N bytes, read and dropped.
 *  upload    one streamed POST of N bytes (Content-Length), generated on the fly.
 * Only 127.0.0.1 origins are accepted.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { Pool } from 'undici';
import { epochMs, percentile, round } from './common';

export interface OpenTask {
  kind: 'open';
  origin: string;
  path: string;
  headers: Record<string, string>;
  rate: number;
  durationMs: number;
  warmupMs: number;
  /** Most connections the client opens (it opens them as needed). */
  connections: number;
  /** How long to wait for the requests still in flight once the schedule is over. */
  drainMs: number;
  out: string;
}

export interface OpenResult {
  kind: 'open';
  rate: number;
  startAt: number;
  scheduled: number;
  completed: number;
  errors: number;
  /** Requests still unanswered drainMs after the schedule ended (counted with their latency so far). */
  unfinished: number;
  statuses: Record<string, number>;
  /** Per request: scheduled time (ms after startAt) and latency from it (ms). */
  offsets: number[];
  latencies: number[];
  /** How late the client sent requests compared with their schedule (its own timer jitter), ms. */
  sendLagP50: number;
  sendLagP99: number;
  /** Latency from the actual send (what a closed-loop tool reports), ms. */
  serviceP50: number;
  serviceP99: number;
  achievedRate: number;
}

export interface CallsTask {
  kind: 'calls';
  origin: string;
  path: string;
  headers: Record<string, string>;
  count: number;
  concurrency: number;
  /** Stop early after this long, whatever is left. */
  maxMs: number;
  out: string;
}

export interface CallsResult {
  kind: 'calls';
  completed: number;
  errors: number;
  statuses: Record<string, number>;
  startAt: number;
  elapsedMs: number;
}

export interface WarmTask {
  kind: 'warm';
  /** Checked like `origin` for every target. */
  origin: string;
  targets: Array<{ origin: string; path: string; count: number }>;
  headers: Record<string, string>;
  concurrency: number;
  maxMs: number;
  out: string;
}

export interface WarmResult {
  kind: 'warm';
  results: Array<{ origin: string; path: string } & Omit<CallsResult, 'kind'>>;
}

export interface StreamTask {
  kind: 'download' | 'upload';
  origin: string;
  path: string;
  headers: Record<string, string>;
  bytes: number;
  timeoutMs: number;
  out: string;
}

export interface StreamResult {
  kind: 'download' | 'upload';
  status: number;
  /** Bytes received (download) or the size the upstream says it read (upload). */
  bytes: number;
  elapsedMs: number;
  error?: string;
}

export type Task = OpenTask | CallsTask | WarmTask | StreamTask;
/** A task before the harness gives it its result file. */
export type TaskInput = Omit<OpenTask, 'out'> | Omit<CallsTask, 'out'> | Omit<WarmTask, 'out'> | Omit<StreamTask, 'out'>;

function checkOrigin(origin: string): void {
  const u = new URL(origin);
  if (u.hostname !== '127.0.0.1') throw new Error(`load-worker: only 127.0.0.1 is a target (got ${origin})`);
}

function newPool(origin: string, connections: number): Pool {
  return new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: 60_000, bodyTimeout: 60_000 });
}

async function openLoop(t: OpenTask): Promise<OpenResult> {
  const pool = newPool(t.origin, t.connections);
  const run = (durationMs: number, keep: boolean): Promise<Omit<OpenResult, 'kind' | 'rate'>> => {
    const interval = 1000 / t.rate;
    const n = Math.max(1, Math.floor((durationMs * t.rate) / 1000));
    const startAt = epochMs() + 5;
    const latencies = new Float64Array(n).fill(Number.NaN);
    const service = new Float64Array(n).fill(Number.NaN);
    const lag = new Float64Array(n);
    const statuses: Record<string, number> = {};
    let errors = 0;
    let next = 0;
    let settled = 0;
    return new Promise((resolve) => {
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        clearTimeout(drainTimer);
        const end = epochMs();
        let unfinished = 0;
        for (let i = 0; i < n; i++) {
          if (Number.isNaN(latencies[i] as number)) {
            unfinished++;
            latencies[i] = end - (startAt + i * interval);
          }
        }
        const sortedLag = Float64Array.from(lag).sort();
        const sortedService = Float64Array.from(service.filter((v) => !Number.isNaN(v))).sort();
        resolve({
          startAt,
          scheduled: n,
          completed: settled - errors,
          errors,
          unfinished,
          statuses,
          offsets: keep ? Array.from({ length: n }, (_, i) => round(i * interval, 3)) : [],
          latencies: keep ? Array.from(latencies, (v) => round(v, 4)) : [],
          sendLagP50: round(percentile(sortedLag, 0.5), 4),
          sendLagP99: round(percentile(sortedLag, 0.99), 4),
          serviceP50: round(percentile(sortedService, 0.5), 4),
          serviceP99: round(percentile(sortedService, 0.99), 4),
          achievedRate: round(((settled - errors) * 1000) / (end - startAt), 1),
        });
      };
      let drainTimer: NodeJS.Timeout | undefined;
      const fire = (i: number, at: number): void => {
        const sentAt = epochMs();
        lag[i] = sentAt - at;
        pool
          .request({ path: t.path, method: 'GET', headers: t.headers })
          .then(async (res) => {
            await res.body.arrayBuffer();
            const done = epochMs();
            latencies[i] = done - at;
            service[i] = done - sentAt;
            statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
          })
          .catch(() => {
            errors++;
            latencies[i] = epochMs() - at;
          })
          .finally(() => {
            settled++;
            if (settled === n) finish();
          });
      };
      const tick = (): void => {
        const now = epochMs();
        while (next < n && startAt + next * interval <= now) {
          fire(next, startAt + next * interval);
          next++;
        }
        if (next < n) {
          setTimeout(tick, Math.max(0, startAt + next * interval - epochMs()));
        } else {
          drainTimer = setTimeout(finish, t.drainMs);
        }
      };
      setTimeout(tick, 5);
    });
  };
  if (t.warmupMs > 0) await run(t.warmupMs, false);
  const result = await run(t.durationMs, true);
  await pool.destroy();
  return { kind: 'open', rate: t.rate, ...result };
}

async function calls(t: CallsTask): Promise<CallsResult> {
  const pool = newPool(t.origin, t.concurrency);
  const statuses: Record<string, number> = {};
  let errors = 0;
  let completed = 0;
  let next = 0;
  const startAt = epochMs();
  const deadline = startAt + t.maxMs;
  const worker = async (): Promise<void> => {
    while (next < t.count && epochMs() < deadline) {
      next++;
      try {
        const res = await pool.request({ path: t.path, method: 'GET', headers: t.headers });
        await res.body.arrayBuffer();
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        completed++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: t.concurrency }, worker));
  const elapsedMs = epochMs() - startAt;
  await pool.destroy();
  return { kind: 'calls', completed, errors, statuses, startAt, elapsedMs };
}

async function warm(t: WarmTask): Promise<WarmResult> {
  const results: WarmResult['results'] = [];
  for (const target of t.targets) {
    checkOrigin(target.origin);
    const { kind: _kind, ...r } = await calls({
      kind: 'calls',
      origin: target.origin,
      path: target.path,
      headers: t.headers,
      count: target.count,
      concurrency: t.concurrency,
      maxMs: t.maxMs,
      out: '',
    });
    results.push({ origin: target.origin, path: target.path, ...r });
  }
  return { kind: 'warm', results };
}

function generated(bytes: number): Readable {
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  let left = bytes;
  return new Readable({
    read() {
      if (left <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(left, chunk.length);
      left -= n;
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

async function stream(t: StreamTask): Promise<StreamResult> {
  const pool = newPool(t.origin, 1);
  const started = epochMs();
  const signal = AbortSignal.timeout(t.timeoutMs);
  try {
    if (t.kind === 'download') {
      const res = await pool.request({ path: t.path, method: 'GET', headers: t.headers, signal });
      let bytes = 0;
      for await (const c of res.body) bytes += (c as Buffer).length;
      return { kind: t.kind, status: res.statusCode, bytes, elapsedMs: epochMs() - started };
    }
    const res = await pool.request({
      path: t.path,
      method: 'POST',
      headers: { ...t.headers, 'content-type': 'application/octet-stream', 'content-length': String(t.bytes) },
      body: generated(t.bytes),
      signal,
    });
    const text = await res.body.text();
    let bytes = -1;
    try {
      bytes = (JSON.parse(text) as { bytes?: number }).bytes ?? -1;
    } catch {
      bytes = -1;
    }
    return { kind: t.kind, status: res.statusCode, bytes, elapsedMs: epochMs() - started };
  } catch (err) {
    return { kind: t.kind, status: 0, bytes: 0, elapsedMs: epochMs() - started, error: err instanceof Error ? err.message : String(err) };
  } finally {
    await pool.destroy();
  }
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: load-worker <task.json>');
  const task = JSON.parse(readFileSync(file, 'utf8')) as Task;
  checkOrigin(task.origin);
  const result =
    task.kind === 'open'
      ? await openLoop(task)
      : task.kind === 'calls'
        ? await calls(task)
        : task.kind === 'warm'
          ? await warm(task)
          : await stream(task);
  writeFileSync(task.out, JSON.stringify(result));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`load-worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
