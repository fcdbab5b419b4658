/**
 * The benchmark harness: `npm run bench` (full, about 25 minutes) or `npm run bench -- --quick` (under 60 s).
 *
 * Starts, each as its own process on 127.0.0.1: a Code Engine-like upstream, the gateway as built
 * (`node dist/cli/gateway.js`, journal sink and the LogDNA sink into the project's receiver), and the baselines
 * (direct to the upstream, a bare undici proxy, express 5 + http-proxy-middleware 3, nginx when installed).
 * Then, alternating the systems within each round:
 *  - closed loop (wrk or autocannon): 1 KB at 1, 16 and 64 connections, 64 KB at 16: throughput;
 *  - open loop at 500 and 2,000 req/s: latency percentiles from the scheduled send time;
 *  - streaming 100 MB each way through every system, and the growth of a fresh gateway's memory;
 *  - audit events: record and drain rates with fsync on, and live latency while a backlog is delivered.
 * Writes bench/results.md and bench/results.json (never edit them by hand), and when a target is missed,
 * profiles the gateway (--cpu-prof) under 64 connections and adds the top self-time functions.
 *
 *  - the audit chain's cost: the gateway against the same gateway without its chain and checkpoints, 1 KB at 64
 *    connections, alternating (--integrity-only runs just that pair and prints the ratio, writing nothing).
 * Options: --quick, --rounds N, --seconds S (closed loop), --loader wrk|autocannon, --profile (always),
 * --no-profile, --no-nginx, --quiet-wait S, --gateway-env NAME=VALUE (repeatable: an extra setting for every gateway
 * the run starts, e.g. DELIVERY_THREAD=worker; it is listed with the gateway's settings in the results), --out DIR (where results.md/json go; default bench/),
 * --render FILE (write results.md again from a results.json, measuring nothing), --profile-only [--seconds S]
 * (only the gateway's profile under 64 connections, printed; nothing written in bench/).
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  PATH_1KB,
  PATH_64KB,
  ResourceSampler,
  UPLOAD_PATH,
  benchHeaders,
  downloadPath,
  epochMs,
  killAllChildren,
  memory,
  percentile,
  projectRoot,
  runToEnd,
  sleep,
  waitForQuietMachine,
  type Child,
} from './common';
import { closedLoop, defaultLoader, WRK, type Loader } from './closed-loop';
import type { CallsResult, OpenResult, StreamResult, TaskInput, WarmResult } from './load-worker';
import { format, resolveConfig } from 'prettier';
import { summarizeProfile } from './profile';
import { integrityLines, judgeTargets, renderMarkdown } from './report';
import type {
  ClosedScenario,
  DurableFloor,
  EventsScenario,
  IntegrityCost,
  LatencyWindow,
  Machine,
  OpenRun,
  OpenScenario,
  Results,
  Settings,
  StreamRun,
  StreamScenario,
} from './results';
import {
  NGINX,
  gatewayCounts,
  nginxPids,
  nginxVersion,
  receiverAvailable,
  receiverControl,
  receiverStats,
  imageRuntimeEnv,
  startGateway,
  startExpressAudit,
  startHpmProxy,
  startNginx,
  startReceiverProcess,
  startUndiciProxy,
  startUpstream,
  waitDelivered,
  type GatewayProcess,
  type ReceiverProcess,
  type System,
  type SystemId,
  SYSTEM_LABELS,
} from './systems';

const ROOT = projectRoot(__dirname);
/**
 * What the run executes: a copy of dist/, build/, schemas/ and bench/ taken at start (node_modules linked), so
 * that a rebuild in the work tree during the run (another engineer's `npm test`) cannot change or remove the
 * programs measured halfway through.
 */
let APP = ROOT;

function snapshot(dir: string): string {
  const app = path.join(dir, 'app');
  for (const d of ['dist', 'build', 'schemas', 'bench', 'Dockerfile']) {
    if (existsSync(path.join(ROOT, d))) cpSync(path.join(ROOT, d), path.join(app, d), { recursive: true });
  }
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(app, 'node_modules'), 'dir');
  return app;
}
const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(`--${name}`);
const value = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
/** Extra gateway settings from --gateway-env NAME=VALUE (any number of times). */
const extraGatewayEnv: Record<string, string> = Object.fromEntries(
  argv.flatMap((arg, i) => {
    if (arg !== '--gateway-env') return [];
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(argv[i + 1] ?? '');
    if (!m) throw new Error(`--gateway-env takes NAME=VALUE, got ${JSON.stringify(argv[i + 1] ?? '')}`);
    return [[m[1] as string, m[2] as string]];
  }),
);
/** --systems a,b,c: measure only these (the gateway still runs for the event scenarios); for short A/B runs. */
const onlySystems: ReadonlySet<SystemId> | undefined = (() => {
  const list = value('systems');
  if (list === undefined) return undefined;
  const ids = list.split(',').map((x) => x.trim());
  const unknown = ids.filter((id) => !(id in SYSTEM_LABELS));
  if (unknown.length > 0) throw new Error(`--systems: unknown ${unknown.join(', ')}; known: ${Object.keys(SYSTEM_LABELS).join(', ')}`);
  return new Set(ids as SystemId[]);
})();
/** --closed-only: the closed-loop (throughput) scenarios only. */
const closedOnly = flag('closed-only');
const log = (line: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

function settingsFromArgs(): Settings {
  const quick = flag('quick');
  const loaderArg = value('loader');
  const loader: Loader = loaderArg === 'autocannon' || loaderArg === 'wrk' ? loaderArg : defaultLoader();
  const s: Settings = quick
    ? {
        mode: 'quick',
        rounds: 1,
        closedSeconds: 1,
        closedWarmupSeconds: 0,
        openSeconds: 1.2,
        openWarmupSeconds: 0.3,
        loader,
        streamBytes: 100 * 1024 * 1024,
        drainEvents: 2000,
        backlogSeconds: 1.5,
        backlogRate: 500,
        catchupSeconds: 2,
        quietWaitSeconds: 0,
        profile: false,
      }
    : {
        mode: 'full',
        rounds: 3,
        closedSeconds: 8,
        closedWarmupSeconds: 2,
        openSeconds: 10,
        openWarmupSeconds: 2,
        loader,
        streamBytes: 100 * 1024 * 1024,
        drainEvents: 20_000,
        backlogSeconds: 60,
        backlogRate: 500,
        catchupSeconds: 15,
        quietWaitSeconds: 20,
        profile: true,
      };
  const rounds = value('rounds');
  if (rounds !== undefined) s.rounds = Math.max(1, Math.min(10, Number(rounds)));
  const seconds = value('seconds');
  if (seconds !== undefined) s.closedSeconds = Math.max(1, Math.min(60, Math.round(Number(seconds))));
  if (flag('profile')) s.profile = true;
  if (flag('no-profile')) s.profile = false;
  const quietWait = value('quiet-wait');
  if (quietWait !== undefined) s.quietWaitSeconds = Math.max(0, Math.min(120, Number(quietWait)));
  if (loader === 'wrk' && !readableFile(WRK)) throw new Error(`--loader wrk: ${WRK} is not installed (apt-get install -y wrk)`);
  return s;
}

const readableFile = (file: string): boolean => existsSync(file);

async function machineInfo(loader: Loader): Promise<Machine> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  const version = (pkg: string): string => {
    try {
      return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return 'not installed';
    }
  };
  const tools: Record<string, string> = {};
  const ngx = await nginxVersion();
  tools.nginx = ngx ? `${ngx} (Debian nginx-light)` : 'not installed';
  if (readableFile(WRK)) {
    const out = await runToEnd('/bin/sh', ['-c', `${WRK} -v 2>&1 | head -1; true`], { timeoutMs: 5000 }).catch(() => '');
    tools.wrk = out.trim().split(' ')[1] ?? 'installed';
  } else tools.wrk = 'not installed';
  tools.autocannon = version('autocannon');
  tools['load generator (closed loop)'] = loader;
  tools.express = version('express');
  tools['http-proxy-middleware'] = version('http-proxy-middleware');
  tools.undici = version('undici');
  return {
    cpuModel: model,
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    kernel: os.release(),
    node: process.version,
    date: new Date().toISOString(),
    tools,
  };
}

// -------------------------------------------------------------------------------------------------------------

interface Ctx {
  s: Settings;
  dir: string;
  headers: Record<string, string>;
  systems: System[];
  gateway: GatewayProcess;
  /** Every auditing system (the gateway, the audit middlewares): delivery caught up before each measurement. */
  auditing: GatewayProcess[];
  receiver: ReceiverProcess | undefined;
  taskSeq: number;
  /** Measurements started while other processes were still busy after the wait. */
  busyWaits: number;
}

async function runTask<T>(ctx: Pick<Ctx, 'dir' | 'taskSeq'>, task: TaskInput, timeoutMs: number): Promise<T> {
  const n = ctx.taskSeq++;
  const file = path.join(ctx.dir, `task-${n}.json`);
  const out = path.join(ctx.dir, `task-${n}.out.json`);
  writeFileSync(file, JSON.stringify({ ...task, out }));
  await runToEnd(process.execPath, [path.join(APP, 'build', 'bench', 'load-worker.js'), file], { timeoutMs });
  return JSON.parse(readFileSync(out, 'utf8')) as T;
}

/** Forward on even rounds, reversed on odd ones: drift over the run affects every system alike. */
function order<T>(items: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...items] : [...items].reverse();
}

async function quiet(ctx: Ctx, gateway?: GatewayProcess): Promise<void> {
  for (const g of gateway ? [gateway] : ctx.auditing) {
    const waited = await waitDelivered(g, 120_000);
    if (waited < 0) log(`warning: ${g.child.name} still had undelivered events after 120 s`);
  }
  if (ctx.s.quietWaitSeconds > 0) {
    const load = await waitForQuietMachine(ctx.s.quietWaitSeconds * 1000);
    if (load >= 0.15) {
      ctx.busyWaits++;
      log(`warning: other processes kept using ${load.toFixed(2)} cores; measuring anyway`);
    }
  }
}

async function warmUp(ctx: Ctx): Promise<void> {
  const quick = ctx.s.mode === 'quick';
  const targets = ctx.systems.flatMap((sys) => [
    { origin: sys.url, path: PATH_1KB, count: quick ? 300 : 3000 },
    { origin: sys.url, path: PATH_64KB, count: quick ? 30 : 300 },
  ]);
  const r = await runTask<WarmResult>(
    ctx,
    { kind: 'warm', origin: ctx.systems[0]?.url ?? '', targets, headers: ctx.headers, concurrency: 16, maxMs: 20_000 },
    120_000,
  );
  for (const x of r.results) {
    if (x.errors > 0 || (x.statuses['200'] ?? 0) !== x.completed) {
      throw new Error(`warm-up calls to ${x.origin}${x.path} failed: ${JSON.stringify(x)}`);
    }
  }
  await quiet(ctx);
}

async function closedScenarios(ctx: Ctx, upstreamBytes: { bytes1k: number; bytes64k: number }): Promise<ClosedScenario[]> {
  const defs =
    ctx.s.mode === 'quick'
      ? [
          { id: 'closed-1k-c64', path: PATH_1KB, c: 64, bytes: upstreamBytes.bytes1k },
          { id: 'closed-64k-c16', path: PATH_64KB, c: 16, bytes: upstreamBytes.bytes64k },
        ]
      : [
          { id: 'closed-1k-c1', path: PATH_1KB, c: 1, bytes: upstreamBytes.bytes1k },
          { id: 'closed-1k-c16', path: PATH_1KB, c: 16, bytes: upstreamBytes.bytes1k },
          { id: 'closed-1k-c64', path: PATH_1KB, c: 64, bytes: upstreamBytes.bytes1k },
          { id: 'closed-64k-c16', path: PATH_64KB, c: 16, bytes: upstreamBytes.bytes64k },
        ];
  const out: ClosedScenario[] = [];
  for (const d of defs) {
    const scenario: ClosedScenario = {
      id: d.id,
      title: `${d.bytes > 10_000 ? '64 KB' : '1 KB'}, ${d.c} connection${d.c === 1 ? '' : 's'}`,
      path: d.path,
      bodyBytes: d.bytes,
      connections: d.c,
      runs: [],
    };
    for (let round = 0; round < ctx.s.rounds; round++) {
      for (const sys of order(ctx.systems, round)) {
        await quiet(ctx);
        const url = sys.url + d.path;
        if (ctx.s.closedWarmupSeconds > 0) await closedLoop(APP, ctx.s.loader, url, d.c, ctx.s.closedWarmupSeconds, ctx.headers);
        const sampler = new ResourceSampler(sys.pids);
        const r = await closedLoop(APP, ctx.s.loader, url, d.c, ctx.s.closedSeconds, ctx.headers);
        const res = sampler.stop();
        scenario.runs.push({
          system: sys.id,
          round,
          requests: r.requests,
          rps: r.rps,
          errors: r.errors,
          p50Ms: r.latencyP50Ms,
          p99Ms: r.latencyP99Ms,
          ...res,
        });
        log(`${d.id} round ${round + 1} ${sys.id}: ${Math.round(r.rps)} req/s, p99 ${r.latencyP99Ms.toFixed(2)} ms, errors ${r.errors}`);
      }
    }
    out.push(scenario);
  }
  return out;
}

function windowOf(latencies: number[]): LatencyWindow {
  const sorted = Float64Array.from(latencies).sort();
  return {
    samples: sorted.length,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.length > 0 ? (sorted[sorted.length - 1] as number) : Number.NaN,
  };
}

async function openScenarios(ctx: Ctx): Promise<OpenScenario[]> {
  const rates = ctx.s.mode === 'quick' ? [500] : [500, 2000];
  const out: OpenScenario[] = [];
  for (const rate of rates) {
    const scenario: OpenScenario = { id: `open-1k-${rate}`, rate, path: PATH_1KB, runs: [] };
    for (let round = 0; round < ctx.s.rounds; round++) {
      for (const sys of order(ctx.systems, round)) {
        await quiet(ctx);
        // The sampler starts with the warm-up; the warm-up is short and at the same rate.
        const sampler = new ResourceSampler(sys.pids);
        const r = await runTask<OpenResult>(
          ctx,
          {
            kind: 'open',
            origin: sys.url,
            path: PATH_1KB,
            headers: ctx.headers,
            rate,
            durationMs: ctx.s.openSeconds * 1000,
            warmupMs: ctx.s.openWarmupSeconds * 1000,
            connections: 64,
            drainMs: 10_000,
          },
          (ctx.s.openSeconds + ctx.s.openWarmupSeconds) * 1000 + 60_000,
        );
        const res = sampler.stop();
        const sorted = Float64Array.from(r.latencies).sort();
        const run: OpenRun = {
          system: sys.id,
          round,
          scheduled: r.scheduled,
          completed: r.completed,
          errors: r.errors + Object.entries(r.statuses).reduce((n, [st, c]) => n + (st === '200' ? 0 : c), 0),
          unfinished: r.unfinished,
          achievedRate: r.achievedRate,
          p50Ms: percentile(sorted, 0.5),
          p90Ms: percentile(sorted, 0.9),
          p99Ms: percentile(sorted, 0.99),
          p999Ms: percentile(sorted, 0.999),
          maxMs: sorted.length > 0 ? (sorted[sorted.length - 1] as number) : Number.NaN,
          sendLagP99Ms: r.sendLagP99,
          serviceP50Ms: r.serviceP50,
          serviceP99Ms: r.serviceP99,
          ...res,
        };
        scenario.runs.push(run);
        log(
          `open ${rate}/s round ${round + 1} ${sys.id}: p50 ${run.p50Ms.toFixed(3)} p99 ${run.p99Ms.toFixed(3)} ms, errors ${run.errors}`,
        );
      }
    }
    out.push(scenario);
  }
  return out;
}

async function eventsScenario(ctx: Ctx, receiver: ReceiverProcess): Promise<EventsScenario> {
  const gw = ctx.gateway;
  const untilCount = async (n: number, maxMs: number): Promise<Awaited<ReturnType<typeof receiverStats>>> => {
    const deadline = Date.now() + maxMs;
    let st = await receiverStats(receiver);
    while (st.count < n && Date.now() < deadline) {
      await sleep(20);
      st = await receiverStats(receiver);
    }
    return st;
  };
  const untilFileSink = async (): Promise<void> => {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const c = await gatewayCounts(gw);
      if ((c.delivered.file ?? 0) >= c.recorded || Date.now() > deadline) return;
      await sleep(50);
    }
  };

  // Drain: a backlog made while the receiver is down, then delivered.
  await quiet(ctx);
  await receiverControl(receiver, 'down');
  await receiverControl(receiver, 'mark');
  const made = await runTask<CallsResult>(
    ctx,
    { kind: 'calls', origin: gw.url, path: PATH_1KB, headers: ctx.headers, count: ctx.s.drainEvents, concurrency: 64, maxMs: 120_000 },
    180_000,
  );
  const recordRate = (made.completed * 1000) / made.elapsedMs;
  await untilFileSink();
  const upAt = epochMs();
  await receiverControl(receiver, 'ok');
  const drained = await untilCount(made.completed, 300_000);
  const lastAt = drained.lastAt ?? Number.NaN;
  const firstAt = drained.firstAt ?? Number.NaN;
  const drain = {
    events: drained.count,
    recordRate,
    steadyRate: ((drained.count - drained.firstBatch) * 1000) / Math.max(1, lastAt - firstAt),
    fromUpRate: (drained.count * 1000) / Math.max(1, lastAt - upAt),
    drainMs: lastAt - upAt,
    retryWaitMs: firstAt - upAt,
  };
  log(`events drain: ${drained.count} events, ${Math.round(drain.steadyRate)}/s (recorded at ${Math.round(recordRate)} calls/s)`);

  // Live: calls and delivery at once.
  await quiet(ctx);
  await receiverControl(receiver, 'mark');
  const liveCalls = await runTask<CallsResult>(
    ctx,
    { kind: 'calls', origin: gw.url, path: PATH_1KB, headers: ctx.headers, count: ctx.s.drainEvents, concurrency: 64, maxMs: 120_000 },
    180_000,
  );
  const lived = await untilCount(liveCalls.completed, 300_000);
  const deliveredAfterMs = (lived.lastAt ?? Number.NaN) - liveCalls.startAt;
  const live = {
    events: lived.count,
    callsPerSecond: (liveCalls.completed * 1000) / liveCalls.elapsedMs,
    deliveredAfterMs,
    rate: (lived.count * 1000) / deliveredAfterMs,
  };
  log(`events live: ${Math.round(live.callsPerSecond)} calls/s, all delivered after ${(deliveredAfterMs / 1000).toFixed(2)} s`);

  // Backlog: calls at a moderate rate while the receiver is down, then it comes back while live calls go on.
  await quiet(ctx);
  await receiverControl(receiver, 'down');
  await receiverControl(receiver, 'mark');
  const recordedAtMark = (await gatewayCounts(gw)).recorded;
  const backlogCalls = await runTask<OpenResult>(
    ctx,
    {
      kind: 'open',
      origin: gw.url,
      path: PATH_1KB,
      headers: ctx.headers,
      rate: ctx.s.backlogRate,
      durationMs: ctx.s.backlogSeconds * 1000,
      warmupMs: 0,
      connections: 64,
      drainMs: 10_000,
    },
    ctx.s.backlogSeconds * 1000 + 60_000,
  );
  if (backlogCalls.completed < backlogCalls.scheduled)
    log(`warning: ${backlogCalls.scheduled - backlogCalls.completed} backlog calls failed`);
  await untilFileSink();
  const liveRate = 500;
  const liveRun = runTask<OpenResult>(
    ctx,
    {
      kind: 'open',
      origin: gw.url,
      path: PATH_1KB,
      headers: ctx.headers,
      rate: liveRate,
      durationMs: ctx.s.catchupSeconds * 1000,
      warmupMs: 0,
      connections: 64,
      drainMs: 10_000,
    },
    ctx.s.catchupSeconds * 1000 + 60_000,
  );
  let finished = false;
  void liveRun.finally(() => (finished = true));
  await sleep(Math.min(1000, (ctx.s.catchupSeconds * 1000) / 4));
  // The backlog: every event recorded until the receiver comes back (the live calls of that first second too).
  const backlog = (await gatewayCounts(gw)).recorded - recordedAtMark;
  const backUpAt = epochMs();
  await receiverControl(receiver, 'ok');
  let caughtUpAt = -1;
  while (!finished) {
    const st = await receiverStats(receiver);
    if (st.count >= backlog) {
      caughtUpAt = st.lastAt ?? epochMs();
      break;
    }
    await sleep(20);
  }
  const lr = await liveRun;
  if (caughtUpAt < 0) {
    const st = await receiverStats(receiver);
    if (st.count >= backlog && st.lastAt !== null && st.lastAt <= lr.startAt + ctx.s.catchupSeconds * 1000) caughtUpAt = st.lastAt;
  }
  const before: number[] = [];
  const during: number[] = [];
  const after: number[] = [];
  for (let i = 0; i < lr.latencies.length; i++) {
    const at = lr.startAt + (lr.offsets[i] as number);
    const l = lr.latencies[i] as number;
    if (at < backUpAt) before.push(l);
    else if (caughtUpAt < 0 || at <= caughtUpAt) during.push(l);
    else after.push(l);
  }
  const catchUpMs = caughtUpAt < 0 ? -1 : caughtUpAt - backUpAt;
  log(`events backlog: ${backlog} events delivered in ${(catchUpMs / 1000).toFixed(2)} s while live calls went on`);
  await waitDelivered(gw, 120_000);
  return {
    drain,
    live,
    backlog: {
      seconds: ctx.s.backlogSeconds,
      rate: ctx.s.backlogRate,
      events: backlog,
      catchUpMs,
      catchUpRate: catchUpMs > 0 ? (backlog * 1000) / catchUpMs : Number.NaN,
      liveRate,
      before: windowOf(before),
      during: windowOf(during),
      after: windowOf(after),
      whole: windowOf(lr.latencies),
      errors: lr.errors + lr.unfinished + Object.entries(lr.statuses).reduce((n, [st, c]) => n + (st === '200' ? 0 : c), 0),
    },
  };
}

async function streamScenario(
  ctx: Ctx,
  upstreamUrl: string,
  systems: System[],
): Promise<{ scenario: StreamScenario; gateway: GatewayProcess }> {
  // A gateway of its own, so that its memory before the transfers is that of a gateway serving small calls.
  const gateway = await startGateway({
    root: APP,
    dir: path.join(ctx.dir, 'gateway-stream'),
    upstreamUrl,
    receiver: ctx.receiver,
    extraEnv: extraGatewayEnv,
  });
  const gwSystem: System = { id: 'gateway', url: gateway.url, pids: () => [gateway.child.pid] };
  // Quick mode streams through the gateway and direct only (the memory target is the gateway's).
  const list = systems
    .filter((s) => ctx.s.mode === 'full' || s.id === 'direct' || s.id === 'gateway')
    .map((s) => (s.id === 'gateway' ? gwSystem : s));
  await runTask<CallsResult>(
    ctx,
    {
      kind: 'calls',
      origin: gateway.url,
      path: PATH_1KB,
      headers: ctx.headers,
      count: ctx.s.mode === 'quick' ? 500 : 2000,
      concurrency: 16,
      maxMs: 20_000,
    },
    30_000,
  );
  await waitDelivered(gateway, 30_000);
  const m0 = memory(gateway.child.pid);
  const scenario: StreamScenario = {
    bytes: ctx.s.streamBytes,
    runs: [],
    gatewayHwmBeforeKb: m0?.hwmKb ?? 0,
    gatewayRssBeforeKb: m0?.rssKb ?? 0,
    gatewayHwmAfterKb: 0,
  };
  const rounds = ctx.s.mode === 'quick' ? 1 : ctx.s.rounds;
  for (let round = 0; round < rounds; round++) {
    for (const sys of order(list, round)) {
      for (const direction of ['download', 'upload'] as const) {
        await quiet(ctx, gateway);
        const r = await runTask<StreamResult>(
          ctx,
          {
            kind: direction,
            origin: sys.url,
            path: direction === 'download' ? downloadPath(ctx.s.streamBytes) : UPLOAD_PATH,
            headers: ctx.headers,
            bytes: ctx.s.streamBytes,
            timeoutMs: 120_000,
          },
          150_000,
        );
        const ok = r.status === 200 && r.bytes === ctx.s.streamBytes && r.error === undefined;
        const run: StreamRun = {
          system: sys.id,
          round,
          direction,
          seconds: r.elapsedMs / 1000,
          mbPerSecond: ctx.s.streamBytes / 1e6 / (r.elapsedMs / 1000),
          ok,
        };
        if (!ok) run.error = r.error ?? `status ${r.status}, ${r.bytes} bytes`;
        if (sys.id === 'gateway') run.hwmAfterKb = memory(gateway.child.pid)?.hwmKb ?? 0;
        scenario.runs.push(run);
        log(`stream ${direction} round ${round + 1} ${sys.id}: ${run.seconds.toFixed(2)} s${ok ? '' : ` FAILED ${run.error ?? ''}`}`);
      }
    }
  }
  await waitDelivered(gateway, 60_000);
  scenario.gatewayHwmAfterKb = memory(gateway.child.pid)?.hwmKb ?? 0;
  return { scenario, gateway };
}

/** The upstream and, when it was built, the receiver: each its own process. */
async function startBackends(
  children: Child[],
): Promise<{ upstream: Awaited<ReturnType<typeof startUpstream>>; receiver: ReceiverProcess | undefined }> {
  const upstream = await startUpstream(APP);
  children.push(upstream.child);
  const receiver = receiverAvailable(APP) ? await startReceiverProcess(APP) : undefined;
  if (receiver) children.push(receiver.child);
  return { upstream, receiver };
}

/** The gateway measured: dist/cli/gateway.js as `npm start` runs it. */
function startMeasured(dir: string, upstreamUrl: string, receiver: ReceiverProcess | undefined): Promise<GatewayProcess> {
  return startGateway({ root: APP, dir: path.join(dir, 'gateway'), upstreamUrl, receiver, extraEnv: extraGatewayEnv });
}

/** The gateway without its audit chain and checkpoints (bench/gateway-unchained.ts), configured as the measured one. */
function startUnchained(ctx: Pick<Ctx, 'dir' | 'receiver'>, upstreamUrl: string): Promise<GatewayProcess> {
  return startGateway({
    root: APP,
    dir: path.join(ctx.dir, 'gateway-unchained'),
    upstreamUrl,
    receiver: ctx.receiver,
    extraEnv: extraGatewayEnv,
    entry: path.join(APP, 'build', 'bench', 'gateway-unchained.js'),
  });
}

/**
 * What hashing, the chain and the checkpoints cost: the gateway and the same gateway without them, 1 KB at 64
 * connections, alternating within each round (at least 5 rounds in a full run: the difference is small).
 */
async function integrityCost(ctx: Ctx, unchained: GatewayProcess): Promise<IntegrityCost> {
  const pair: Array<{ id: 'gateway' | 'gateway-unchained'; g: GatewayProcess }> = [
    { id: 'gateway', g: ctx.gateway },
    { id: 'gateway-unchained', g: unchained },
  ];
  const rounds = ctx.s.mode === 'quick' ? ctx.s.rounds : Math.max(5, ctx.s.rounds);
  // The same warm-up the measured gateway had (its JIT warm, its pools open), so the pair differs in the chain only.
  for (const { g } of pair) {
    await runTask<CallsResult>(
      ctx,
      {
        kind: 'calls',
        origin: g.url,
        path: PATH_1KB,
        headers: ctx.headers,
        count: ctx.s.mode === 'quick' ? 1000 : 5000,
        concurrency: 64,
        maxMs: 30_000,
      },
      60_000,
    );
  }
  const runs: IntegrityCost['runs'] = [];
  for (let round = 0; round < rounds; round++) {
    for (const { id, g } of order(pair, round)) {
      await quiet(ctx, g);
      const url = g.url + PATH_1KB;
      if (ctx.s.closedWarmupSeconds > 0) await closedLoop(APP, ctx.s.loader, url, 64, ctx.s.closedWarmupSeconds, ctx.headers);
      const sampler = new ResourceSampler(() => [g.child.pid]);
      const r = await closedLoop(APP, ctx.s.loader, url, 64, ctx.s.closedSeconds, ctx.headers);
      runs.push({
        system: id,
        round,
        requests: r.requests,
        rps: r.rps,
        errors: r.errors,
        p50Ms: r.latencyP50Ms,
        p99Ms: r.latencyP99Ms,
        ...sampler.stop(),
      });
      log(`integrity round ${round + 1} ${id}: ${Math.round(r.rps)} req/s, errors ${r.errors}`);
    }
  }
  return { connections: 64, runs };
}

/** --integrity-only: just the pair, a few rounds, the ratio printed; nothing written in bench/. */
async function integrityOnly(s: Settings, dir: string, children: Child[]): Promise<void> {
  const { upstream, receiver } = await startBackends(children);
  const gateway = await startMeasured(dir, upstream.url, receiver);
  children.push(gateway.child);
  const ctx: Ctx = { s, dir, headers: benchHeaders(), systems: [], gateway, auditing: [gateway], receiver, taskSeq: 0, busyWaits: 0 };
  const unchained = await startUnchained(ctx, upstream.url);
  children.push(unchained.child);
  await warmUp({
    ...ctx,
    systems: [
      { id: 'gateway', url: gateway.url, pids: () => [] },
      { id: 'gateway-unchained', url: unchained.url, pids: () => [] },
    ],
  });
  const cost = await integrityCost(ctx, unchained);
  process.stdout.write(`${integrityLines(cost).join('\n')}\n`);
}

/**
 * What one durable write costs on this disk with nothing else running (bench/durable-floor.ts, its own process), at
 * the open-loop rate of the added-latency targets: the gateway cannot release a call before its event is on disk.
 */
async function durableFloor(ctx: Ctx, rate: number): Promise<DurableFloor> {
  if (ctx.s.quietWaitSeconds > 0) await waitForQuietMachine(ctx.s.quietWaitSeconds * 1000);
  const seconds = ctx.s.mode === 'quick' ? 2 : ctx.s.openSeconds;
  const script = path.join(APP, 'build', 'bench', 'durable-floor.js');
  const args = [script, '--dir', ctx.dir, '--rate', String(rate), '--seconds', String(seconds)];
  const out = await runToEnd(process.execPath, args, { timeoutMs: 120_000 + seconds * 4000 });
  return JSON.parse(out.trim().split('\n').pop() ?? '') as DurableFloor;
}

async function profileGateway(
  ctx: Omit<Ctx, 'gateway'>,
  upstreamUrl: string,
  seconds: number,
): Promise<{ command: string; seconds: number; rps: number; file: string } | undefined> {
  const profDir = path.join(ctx.dir, 'cpu-prof');
  const gw = await startGateway({
    root: APP,
    dir: path.join(ctx.dir, 'gateway-profile'),
    upstreamUrl,
    receiver: ctx.receiver,
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
    extraEnv: extraGatewayEnv,
  });
  let rps = Number.NaN;
  try {
    await runTask<CallsResult>(
      ctx,
      { kind: 'calls', origin: gw.url, path: PATH_1KB, headers: ctx.headers, count: 3000, concurrency: 16, maxMs: 20_000 },
      30_000,
    );
    const r = await closedLoop(APP, ctx.s.loader, gw.url + PATH_1KB, 64, seconds, ctx.headers);
    rps = r.rps;
    await waitDelivered(gw, 60_000);
  } finally {
    await gw.child.stop('SIGTERM', 30_000);
  }
  const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) return undefined;
  // Kept outside the work directory (which is removed at the end) for a closer look, e.g. in Chrome DevTools.
  const kept = path.join(os.tmpdir(), `ce-audit-gateway-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
  copyFileSync(path.join(profDir, files[0] as string), kept);
  log(`profile kept in ${kept}`);
  return { command: 'node --cpu-prof --cpu-prof-dir=<tmp> dist/cli/gateway.js', seconds, rps, file: kept };
}

/** --profile-only: the profile of the full run, without the rest; prints the summary, writes nothing in bench/. */
async function profileOnly(s: Settings, dir: string, children: Child[]): Promise<void> {
  const { upstream, receiver } = await startBackends(children);
  const ctx: Omit<Ctx, 'gateway'> = { s, dir, headers: benchHeaders(), systems: [], auditing: [], receiver, taskSeq: 0, busyWaits: 0 };
  if (s.quietWaitSeconds > 0) await waitForQuietMachine(s.quietWaitSeconds * 1000);
  const seconds = Number(value('seconds') ?? '10');
  const p = await profileGateway(ctx, upstream.url, seconds);
  if (!p) throw new Error('the profiled gateway wrote no .cpuprofile');
  const sum = summarizeProfile(p.file, 25);
  const line = (f: { percent: number; ms: number; name: string; file: string }): string =>
    `${f.percent.toFixed(1).padStart(5)}%  ${String(f.ms).padStart(8)} ms  ${f.name}  ${f.file}\n`;
  process.stdout.write(
    `${p.command}, ${seconds} s at 64 connections on 1 KB: ${Math.round(p.rps)} req/s; ${sum.busyMs} ms busy of ${sum.totalMs} ms\n`,
  );
  process.stdout.write('\nby area:\n');
  for (const a of sum.areas.slice(0, 15)) process.stdout.write(line(a));
  process.stdout.write('\ncharged to the innermost gateway function on the stack:\n');
  for (const f of sum.bySrcCaller) process.stdout.write(line(f));
  process.stdout.write('\ntop functions by self time:\n');
  for (const f of sum.functions) process.stdout.write(line(f));
}

/** Which gateway was measured: the commit, and the uncommitted changes of src/ and schemas/ (read-only git). */
async function sourceInfo(): Promise<Results['source']> {
  try {
    const commit = (await runToEnd('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { timeoutMs: 10_000 })).trim();
    const status = await runToEnd('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src', 'schemas'], { timeoutMs: 10_000 });
    const uncommitted = status
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
    return { commit, uncommitted };
  } catch {
    return undefined;
  }
}

/** Writes a results file formatted the way `npm run lint` (prettier --check ... bench) expects it. */
async function writeFormatted(file: string, text: string): Promise<void> {
  const options = (await resolveConfig(file)) ?? {};
  writeFileSync(file, await format(text, { ...options, filepath: file }));
}

// -------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const fromJson = value('render');
  if (fromJson !== undefined) {
    // Renders results.md again from a results.json (after a change to the report's layout), measuring nothing.
    const results = JSON.parse(readFileSync(fromJson, 'utf8')) as Results;
    const out = path.join(path.dirname(path.resolve(fromJson)), 'results.md');
    await writeFormatted(out, renderMarkdown(results));
    log(`rendered ${out} from ${fromJson}`);
    return;
  }
  const startedAt = Date.now();
  const s = settingsFromArgs();
  const outDir = path.resolve(value('out') ?? path.join(ROOT, 'bench'));
  const command = `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
  const machine = await machineInfo(s.loader);
  const source = await sourceInfo();
  const notes: string[] = [];
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ce-audit-bench-'));
  APP = snapshot(dir);
  const children: Child[] = [];
  log(`${s.mode} run, ${s.rounds} round(s), load: ${s.loader}, work dir ${dir}`);
  const only = flag('integrity-only') ? integrityOnly : flag('profile-only') ? profileOnly : undefined;
  if (only) {
    try {
      await only(s, dir, children);
    } finally {
      for (const c of children.reverse()) await c.stop('SIGTERM', 15_000);
      await rm(dir, { recursive: true, force: true });
    }
    return;
  }
  try {
    const upstream = await startUpstream(APP);
    children.push(upstream.child);
    let receiver: ReceiverProcess | undefined;
    if (receiverAvailable(APP)) {
      receiver = await startReceiverProcess(APP);
      children.push(receiver.child);
    } else {
      notes.push(
        'The receiver (build/src/receiver) is missing: the gateway ran with the journal sink only, and the event scenarios were skipped.',
      );
    }
    const gateway = await startMeasured(dir, upstream.url, receiver);
    children.push(gateway.child);
    const wanted = (id: SystemId): boolean => onlySystems === undefined || onlySystems.has(id);
    const systems: System[] = [];
    if (wanted('direct')) systems.push({ id: 'direct', url: upstream.url, pids: () => [upstream.child.pid] });
    if (wanted('undici')) {
      const undici = await startUndiciProxy(APP, upstream.url);
      children.push(undici);
      systems.push({ id: 'undici', url: String(undici.ready.url), pids: () => [undici.pid] });
    }
    for (const [id, agent] of [
      ['hpm', 'none'],
      ['hpm-ka', 'keep-alive'],
    ] as const) {
      if (!wanted(id)) continue;
      const hpm = await startHpmProxy(APP, upstream.url, agent);
      children.push(hpm);
      systems.push({ id, url: String(hpm.ready.url), pids: () => [hpm.pid] });
    }
    const auditing: GatewayProcess[] = [gateway];
    for (const [id, proxy] of [
      ['mw-hpm', 'hpm'],
      ['mw-ce', 'ce'],
    ] as const) {
      if (!wanted(id)) continue;
      const mw = await startExpressAudit(
        { root: APP, dir: path.join(dir, id), upstreamUrl: upstream.url, receiver, extraEnv: extraGatewayEnv },
        proxy,
      );
      children.push(mw.child);
      auditing.push(mw);
      systems.push({ id, url: mw.url, pids: () => [mw.child.pid] });
    }
    if (!wanted('nginx')) {
      notes.push('nginx was left out (--systems).');
    } else if (flag('no-nginx')) {
      notes.push('nginx was left out (--no-nginx).');
    } else if (!readableFile(NGINX)) {
      notes.push(`nginx is not installed (${NGINX}): its baseline was skipped. apt-get install -y nginx-light adds it.`);
    } else {
      try {
        const ngx = await startNginx(APP, path.join(dir, 'nginx'), upstream.url);
        children.push(ngx.child);
        systems.push({ id: 'nginx', url: ngx.url, pids: () => nginxPids(ngx.child.pid) });
      } catch (err) {
        notes.push(`nginx did not start, its baseline was skipped: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
      }
    }
    if (wanted('gateway')) systems.push({ id: 'gateway', url: gateway.url, pids: () => [gateway.child.pid] });
    const headers = benchHeaders();
    const ctx: Ctx = { s, dir, headers, systems, gateway, auditing, receiver, taskSeq: 0, busyWaits: 0 };
    log(`systems: ${systems.map((x) => `${x.id} ${x.url}`).join(', ')}`);

    await warmUp(ctx);
    log('warmed up');
    const closed = await closedScenarios(ctx, upstream);
    const open = closedOnly ? [] : await openScenarios(ctx);
    await quiet(ctx);
    const gatewayHwmAfterLoadKb = memory(gateway.child.pid)?.hwmKb ?? 0;
    const events = receiver && !closedOnly ? await eventsScenario(ctx, receiver) : undefined;
    await quiet(ctx);
    const unchained = await startUnchained(ctx, upstream.url);
    children.push(unchained.child);
    const integrity = await integrityCost(ctx, unchained);
    await unchained.child.stop('SIGTERM', 30_000);
    await gateway.child.stop('SIGTERM', 30_000);
    let stream: StreamScenario | undefined;
    let floor: DurableFloor | undefined;
    if (closedOnly) {
      notes.push('Only the closed-loop scenarios ran (--closed-only).');
    } else {
      const streamed = await streamScenario(ctx, upstream.url, systems);
      children.push(streamed.gateway.child);
      await streamed.gateway.child.stop('SIGTERM', 30_000);
      stream = streamed.scenario;
      floor = await durableFloor(ctx, 500);
      log(`durable-write floor at 500/s: spool append p50 ${floor.spool.p50Ms} / p99 ${floor.spool.p99Ms} ms`);
    }

    const gatewayEnv: Record<string, string> = {
      ...(await imageRuntimeEnv(APP)),
      HOST: '127.0.0.1',
      PORT: '0',
      ADMIN_PORT: '0',
      'CE_API_URL=CE_KUBE_API_URL': '<upstream>',
      AT_SINK: gateway.sinks.join(','),
      SPOOL_FSYNC: 'true',
      AT_FILE_FSYNC: 'true',
      RETRY_BASE_MS: '100',
      RETRY_MAX_MS: '1000',
      LOG_LEVEL: 'info',
      ...extraGatewayEnv,
    };
    const partial: Omit<Results, 'targets' | 'elapsedSeconds'> = {
      machine,
      command,
      source,
      settings: s,
      notes,
      systems: systems.map((x) => x.id),
      upstream: { bytes1k: upstream.bytes1k, bytes64k: upstream.bytes64k },
      gatewayEnv,
      closed,
      open,
      stream,
      events,
      durableFloor: floor,
      integrity,
      gatewayHwmAfterLoadKb,
      profile: undefined,
    };
    const targets = judgeTargets(partial);
    const missed = targets.some((t) => !t.pass);
    let profile: Results['profile'];
    if (s.profile && (missed || flag('profile'))) {
      const seconds = s.mode === 'quick' ? 3 : 10;
      log(`${missed ? 'a target was missed: ' : ''}profiling the gateway under 64 connections for ${seconds} s`);
      const p = await profileGateway(ctx, upstream.url, seconds);
      if (p) profile = { command: p.command, seconds: p.seconds, rps: p.rps, summary: summarizeProfile(p.file, 25) };
      else notes.push('The profiled gateway wrote no .cpuprofile.');
    }
    if (missed && !s.profile)
      notes.push('A target was missed; this run did not profile the gateway (the full run does, and --profile asks for it).');
    if (ctx.busyWaits > 0) {
      notes.push(
        `${ctx.busyWaits} measurement(s) started while other processes on the machine still used more than 0.15 cores after waiting ${s.quietWaitSeconds} s; see the "other CPU" columns.`,
      );
    }
    const results: Results = { ...partial, targets, profile, elapsedSeconds: (Date.now() - startedAt) / 1000 };
    mkdirSync(outDir, { recursive: true });
    await writeFormatted(path.join(outDir, 'results.json'), JSON.stringify(results));
    await writeFormatted(path.join(outDir, 'results.md'), renderMarkdown(results));
    log(`wrote ${path.join(outDir, 'results.md')} and results.json in ${Math.round(results.elapsedSeconds)} s`);
    for (const t of targets) process.stdout.write(`${t.pass ? 'PASS' : 'MISS'}  ${t.text}: ${t.measured}\n`);
  } finally {
    for (const c of children.reverse()) await c.stop(c.name === 'nginx' ? 'SIGQUIT' : 'SIGTERM', 15_000);
    await rm(dir, { recursive: true, force: true });
  }
}

process.on('exit', killAllChildren);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllChildren();
    process.exit(130);
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
