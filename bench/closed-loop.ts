/**
 * Closed-loop load (throughput): a fixed number of keep-alive connections, each sending its next request as
 * soon as the previous answer arrived. wrk (Debian's, native, one thread) when installed, since it leaves more
 * of this 2-core machine to the system under test; autocannon from npm otherwise. Either runs as its own
 * process, bounded by its duration.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runToEnd } from './common';

export type Loader = 'wrk' | 'autocannon';

export interface ClosedLoopResult {
  requests: number;
  seconds: number;
  rps: number;
  /** Connection errors, timeouts and non-2xx answers. */
  errors: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMeanMs: number;
}

export const WRK = '/usr/bin/wrk';

export function defaultLoader(): Loader {
  return existsSync(WRK) ? 'wrk' : 'autocannon';
}

interface WrkJson {
  requests: number;
  duration_us: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  lat_mean_us: number;
  lat_p50_us: number;
  lat_p99_us: number;
}

interface AutocannonJson {
  requests: { total: number };
  latency: { p50: number; p99: number; average: number };
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
}

export async function closedLoop(
  root: string,
  loader: Loader,
  url: string,
  connections: number,
  seconds: number,
  headers: Record<string, string>,
): Promise<ClosedLoopResult> {
  if (new URL(url).hostname !== '127.0.0.1') throw new Error(`closed-loop: only 127.0.0.1 is a target (got ${url})`);
  const timeoutMs = (seconds + 30) * 1000;
  if (loader === 'wrk') {
    const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', path.join(root, 'bench', 'wrk-report.lua')];
    for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
    args.push(url);
    const out = await runToEnd(WRK, args, { timeoutMs });
    const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '));
    if (!line) throw new Error(`wrk printed no summary:\n${out}`);
    const j = JSON.parse(line.slice('BENCH_JSON '.length)) as WrkJson;
    const s = j.duration_us / 1e6;
    return {
      requests: j.requests,
      seconds: s,
      rps: j.requests / s,
      errors: j.connect + j.read + j.write + j.status + j.timeout,
      latencyP50Ms: j.lat_p50_us / 1000,
      latencyP99Ms: j.lat_p99_us / 1000,
      latencyMeanMs: j.lat_mean_us / 1000,
    };
  }
  const cli = path.join(root, 'node_modules', 'autocannon', 'autocannon.js');
  const args = [cli, '-j', '-n', '-c', String(connections), '-d', String(seconds), '-t', '10'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}=${v}`);
  args.push(url);
  const out = await runToEnd(process.execPath, args, { timeoutMs });
  const j = JSON.parse(out.trim().split('\n').pop() ?? '{}') as AutocannonJson;
  return {
    requests: j.requests.total,
    seconds: j.duration,
    rps: j.requests.total / j.duration,
    errors: j.errors + j.timeouts + j.non2xx,
    latencyP50Ms: j.latency.p50,
    latencyP99Ms: j.latency.p99,
    latencyMeanMs: j.latency.average,
  };
}
