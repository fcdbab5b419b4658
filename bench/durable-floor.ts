/**
 * The floor under the gateway's added latency: what a durable write costs on this machine's disk with nothing else
 * running. The gateway releases a call's last byte only once the call's event is on disk (SPOOL_FSYNC=true), so a
 * call through it can be no faster than the spool's append; the added-latency targets are read against this.
 *  - device: one O_DSYNC pwrite of one event at a time, at the open-loop rate, into a zero-filled file (a group
 *    commit of one event at its cheapest: no batching, no journal commit);
 *  - spool: RegionSpool.append of one event at a time at the same rate, as the gateway runs it (group commit, zeros
 *    written ahead, one write in flight), timed from the call to the promise resolving.
 * Run: node build/bench/durable-floor.js --dir D [--rate 500] [--seconds 10] [--event-bytes 1100]; prints JSON.
 */
import { constants } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { RegionSpool } from '../src/spool/region-spool';
import { argValue as arg, percentile, round, sleep } from './common';
import type { DurableFloor, LatencySummary } from './results';

function summarize(latencies: number[]): LatencySummary {
  const s = Float64Array.from(latencies).sort();
  const at = (q: number): number => round(percentile(s, q), 3);
  return { n: s.length, p50Ms: at(0.5), p90Ms: at(0.9), p99Ms: at(0.99), p999Ms: at(0.999), maxMs: at(1) };
}

/** Calls `op` every 1000/rate ms (the schedule does not wait for earlier calls) and times each until it settles. */
async function openLoop(rate: number, seconds: number, op: (i: number) => Promise<unknown>): Promise<LatencySummary> {
  const n = Math.max(1, Math.round(rate * seconds));
  const latencies: number[] = [];
  const pending: Array<Promise<void>> = [];
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 0) await sleep(wait);
    const t = performance.now();
    pending.push(op(i).then(() => void latencies.push(performance.now() - t)));
  }
  await Promise.all(pending);
  return summarize(latencies);
}

export async function measureDurableFloor(dir: string, rate: number, seconds: number, eventBytes: number): Promise<DurableFloor> {
  const event = Buffer.alloc(eventBytes, 'x');
  const file = await open(path.join(dir, 'device.bin'), constants.O_CREAT | constants.O_WRONLY | constants.O_DSYNC, 0o600);
  let device: LatencySummary;
  try {
    const bytes = Math.ceil(rate * seconds) * eventBytes;
    await file.write(Buffer.alloc(bytes), 0, bytes, 0);
    device = await openLoop(rate, seconds, (i) => file.write(event, 0, eventBytes, i * eventBytes));
  } finally {
    await file.close();
  }
  const spool = await RegionSpool.open({ dir: path.join(dir, 'spool'), fsync: true, segmentBytes: 64 * 1024 * 1024, consumers: ['bench'] });
  let appends: LatencySummary;
  try {
    const json = JSON.stringify({ pad: 'x'.repeat(Math.max(0, eventBytes - 12)) });
    appends = await openLoop(rate, seconds, () => spool.append({ timestampMs: Date.now(), severity: 'normal', json }));
  } finally {
    await spool.close();
  }
  return { rate, seconds, eventBytes, device, spool: appends };
}

async function main(): Promise<void> {
  const parent = arg('dir');
  if (!parent) throw new Error('usage: durable-floor --dir D [--rate 500] [--seconds 10] [--event-bytes 1100]');
  const dir = await mkdtemp(path.join(parent, 'durable-floor-'));
  try {
    const floor = await measureDurableFloor(
      dir,
      Number(arg('rate') ?? 500),
      Number(arg('seconds') ?? 10),
      Number(arg('event-bytes') ?? 1100),
    );
    process.stdout.write(`${JSON.stringify(floor)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`durable-floor: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
