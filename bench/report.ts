/** Medians, ratios, targets and bench/results.md, from what a run measured. */
import { median } from './common';
import type {
  ClosedScenario,
  DurableFloor,
  IntegrityCost,
  EventsScenario,
  LatencySummary,
  OpenScenario,
  Results,
  StreamScenario,
  Target,
} from './results';
import { SYSTEM_LABELS, type SystemId } from './systems';

export interface ClosedSummary {
  system: SystemId;
  rounds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  cpuMsPer1k: number;
  cores: number;
  maxRssMb: number;
  foreignCores: number;
}

export interface OpenSummary {
  system: SystemId;
  rounds: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  achievedRate: number;
  errors: number;
  unfinished: number;
  sendLagP99Ms: number;
  cores: number;
  maxRssMb: number;
  foreignCores: number;
}

const mb = (kb: number): number => kb / 1024;

interface MeasuredRun {
  system: SystemId;
  cpuMs: number;
  wallMs: number;
  maxRssKb: number;
  foreignCores: number;
}

/** One summary per system that ran: what `own` takes from its runs, plus what every scenario reports. */
function perSystem<R extends MeasuredRun, S>(runs: readonly R[], systems: readonly SystemId[], own: (runs: R[]) => S) {
  return systems.flatMap((system) => {
    const mine = runs.filter((r) => r.system === system);
    if (mine.length === 0) return [];
    return [
      {
        system,
        rounds: mine.length,
        ...own(mine),
        cores: median(mine.map((r) => r.cpuMs / r.wallMs)),
        maxRssMb: Math.max(0, ...mine.map((r) => mb(r.maxRssKb))),
        foreignCores: Math.max(0, ...mine.map((r) => r.foreignCores)),
      },
    ];
  });
}

export function summarizeClosed(s: ClosedScenario, systems: readonly SystemId[]): ClosedSummary[] {
  return perSystem(s.runs, systems, (runs) => ({
    rps: median(runs.map((r) => r.rps)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    cpuMsPer1k: median(runs.map((r) => (r.cpuMs / Math.max(1, r.requests)) * 1000)),
  }));
}

export function summarizeOpen(s: OpenScenario, systems: readonly SystemId[]): OpenSummary[] {
  return perSystem(s.runs, systems, (runs) => ({
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p90Ms: median(runs.map((r) => r.p90Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    p999Ms: median(runs.map((r) => r.p999Ms)),
    maxMs: Math.max(0, ...runs.map((r) => r.maxMs)),
    achievedRate: median(runs.map((r) => r.achievedRate)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    unfinished: runs.reduce((n, r) => n + r.unfinished, 0),
    sendLagP99Ms: median(runs.map((r) => r.sendLagP99Ms)),
  }));
}

/** A table cell: a `|` inside it (a regular expression's name in a profile) would split the row. */
const cell = (text: string): string => text.replace(/\|/g, '\\|');
const fmt = (v: number, digits = 2): string => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
const int = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a');
const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');

/** The issue's targets, judged on the medians. */
export function judgeTargets(r: Omit<Results, 'targets' | 'elapsedSeconds'>): Target[] {
  const targets: Target[] = [];
  const c64 = r.closed.find((s) => s.id === 'closed-1k-c64');
  if (c64) {
    const sum = summarizeClosed(c64, r.systems);
    const get = (id: SystemId): number => sum.find((x) => x.system === id)?.rps ?? Number.NaN;
    // [target id, system measured, baseline, the least ratio, what the target says]
    const ratios: ReadonlyArray<readonly [string, SystemId, SystemId, number, string]> = [
      ['throughput-vs-hpm', 'gateway', 'hpm', 1.0, ''],
      ['throughput-vs-undici', 'gateway', 'undici', 0.85, ''],
      ['throughput-vs-hpm-keepalive', 'gateway', 'hpm-ka', 2.0, 'the standalone gateway stays at 2x or more of the keep-alive baseline'],
      ['middleware-cost', 'mw-hpm', 'hpm-ka', 0.8, 'the audit middleware costs at most 20% of the keep-alive baseline'],
      [
        'middleware-with-own-proxy',
        'mw-ce',
        'hpm-ka',
        1.0,
        'express + audit + createCodeEngineProxy is at least as fast as express + http-proxy-middleware (keep-alive)',
      ],
    ];
    for (const [id, system, base, limit, why] of ratios) {
      const v = get(system);
      const b = get(base);
      if (!Number.isFinite(v) || !Number.isFinite(b)) continue;
      targets.push({
        id,
        text: `Throughput, 64 connections, 1 KB: ${system === 'gateway' ? 'gateway' : SYSTEM_LABELS[system]} >= ${limit.toFixed(2)}x ${SYSTEM_LABELS[base]}${why ? ` (${why})` : ''}`,
        measured: `${int(v)} vs ${int(b)} req/s = ${(v / b).toFixed(2)}x`,
        value: v / b,
        limit,
        pass: v / b >= limit,
      });
    }
  }
  const o500 = r.open.find((s) => s.rate === 500);
  if (o500) {
    const sum = summarizeOpen(o500, r.systems);
    const gw = sum.find((x) => x.system === 'gateway');
    const direct = sum.find((x) => x.system === 'direct');
    if (gw && direct) {
      const d99 = gw.p99Ms - direct.p99Ms;
      const d50 = gw.p50Ms - direct.p50Ms;
      const floor = r.durableFloor;
      const floorAt = (q: 'p50Ms' | 'p99Ms'): string =>
        floor ? `; a durable append alone (the floor, see below): ${q.slice(0, 3)} ${fmt(floor.spool[q], 3)} ms` : '';
      targets.push({
        id: 'added-p99-500',
        text: 'Added latency at 500 req/s (open loop): gateway p99 - direct p99 <= 1.5 ms',
        measured: `${fmt(gw.p99Ms, 3)} - ${fmt(direct.p99Ms, 3)} = ${fmt(d99, 3)} ms${floorAt('p99Ms')}`,
        value: d99,
        limit: 1.5,
        pass: d99 <= 1.5,
      });
      targets.push({
        id: 'added-p50-500',
        text: 'Added latency at 500 req/s (open loop): gateway p50 - direct p50 <= 0.5 ms',
        measured: `${fmt(gw.p50Ms, 3)} - ${fmt(direct.p50Ms, 3)} = ${fmt(d50, 3)} ms${floorAt('p50Ms')}`,
        value: d50,
        limit: 0.5,
        pass: d50 <= 0.5,
      });
      const ev = r.events;
      if (ev && ev.backlog.during.samples > 0) {
        const b99 = ev.backlog.during.p99Ms - direct.p99Ms;
        const b50 = ev.backlog.during.p50Ms - direct.p50Ms;
        targets.push({
          id: 'added-latency-during-catch-up',
          text: `Added latency at 500 req/s while a ${ev.backlog.seconds} s backlog is delivered: p99 <= 1.5 ms and p50 <= 0.5 ms over direct`,
          measured: `p99 ${fmt(ev.backlog.during.p99Ms, 3)} - ${fmt(direct.p99Ms, 3)} = ${fmt(b99, 3)} ms; p50 ${fmt(ev.backlog.during.p50Ms, 3)} - ${fmt(direct.p50Ms, 3)} = ${fmt(b50, 3)} ms (${ev.backlog.during.samples} calls)`,
          value: b99,
          limit: 1.5,
          pass: b99 <= 1.5 && b50 <= 0.5,
        });
      }
    }
  }
  if (r.events) {
    const d = r.events.drain;
    targets.push({
      id: 'events-per-second',
      text: 'Events delivered to the receiver with fsync on >= 20,000 events/s (drain of a spooled backlog)',
      measured: `${int(d.steadyRate)} events/s (${int(d.events)} events; ${int(d.fromUpRate)}/s counting the retry wait; recorded at ${int(d.recordRate)} calls/s)`,
      value: d.steadyRate,
      limit: 20_000,
      pass: d.steadyRate >= 20_000,
    });
  }
  const gatewayRss = Math.max(
    0,
    ...r.closed.flatMap((s) => s.runs.filter((x) => x.system === 'gateway').map((x) => mb(x.maxRssKb))),
    ...r.open.flatMap((s) => s.runs.filter((x) => x.system === 'gateway').map((x) => mb(x.maxRssKb))),
    mb(r.gatewayHwmAfterLoadKb),
  );
  if (gatewayRss > 0) {
    targets.push({
      id: 'rss-full-load',
      text: 'Gateway RSS <= 150 MB at full load',
      measured: `peak ${fmt(gatewayRss, 1)} MB (VmHWM after the load scenarios ${fmt(mb(r.gatewayHwmAfterLoadKb), 1)} MB)`,
      value: gatewayRss,
      limit: 150,
      pass: gatewayRss <= 150,
    });
  }
  const st = r.stream;
  if (st && st.gatewayHwmBeforeKb > 0) {
    const growth = mb(st.gatewayHwmAfterKb - st.gatewayHwmBeforeKb);
    const failed = st.runs.filter((x) => x.system === 'gateway' && !x.ok).length;
    targets.push({
      id: 'rss-streaming',
      text: `Streaming ${Math.round(st.bytes / 1048576)} MiB each way grows the gateway's RSS by <= 32 MB`,
      measured: `VmHWM ${fmt(mb(st.gatewayHwmBeforeKb), 1)} -> ${fmt(mb(st.gatewayHwmAfterKb), 1)} MB = +${fmt(growth, 1)} MB${failed ? `; ${failed} transfers FAILED` : ''}`,
      value: growth,
      limit: 32,
      pass: growth <= 32 && failed === 0,
    });
  }
  if (r.integrity) {
    const { chained, unchained } = integritySummary(r.integrity);
    targets.push({
      id: 'integrity-cost',
      text: 'Audit chain and checkpoints, 64 connections, 1 KB: gateway >= 0.95x the same gateway without them',
      measured: `${int(chained)} vs ${int(unchained)} req/s = ${(chained / unchained).toFixed(3)}x`,
      value: chained / unchained,
      limit: 0.95,
      pass: chained / unchained >= 0.95,
    });
  }
  return targets;
}

function integritySummary(c: IntegrityCost): { chained: number; unchained: number } {
  return {
    chained: median(c.runs.filter((x) => x.system === 'gateway').map((x) => x.rps)),
    unchained: median(c.runs.filter((x) => x.system === 'gateway-unchained').map((x) => x.rps)),
  };
}

/** The integrity pair: per round, and the ratio of the medians. */
export function integrityLines(c: IntegrityCost): string[] {
  const { chained, unchained } = integritySummary(c);
  const rounds = [...new Set(c.runs.map((x) => x.round))];
  const lines = [
    `What hashing, the chain and the checkpoints cost: the gateway against the same gateway without them (\`bench/gateway-unchained.ts\`), 1 KB at ${c.connections} connections, closed loop, alternating in each round.`,
    '',
    '| round | with the chain req/s | without req/s | ratio | CPU ms / 1k req with / without |',
    '|---:|---:|---:|---:|---|',
  ];
  for (const round of rounds) {
    const a = c.runs.find((x) => x.round === round && x.system === 'gateway');
    const b = c.runs.find((x) => x.round === round && x.system === 'gateway-unchained');
    if (!a || !b) continue;
    const cpu = (x: typeof a): string => fmt((x.cpuMs / Math.max(1, x.requests)) * 1000, 1);
    lines.push(`| ${round + 1} | ${int(a.rps)} | ${int(b.rps)} | ${(a.rps / b.rps).toFixed(3)} | ${cpu(a)} / ${cpu(b)} |`);
  }
  lines.push(`| median | ${int(chained)} | ${int(unchained)} | ${(chained / unchained).toFixed(3)} | |`, '');
  return lines;
}

function floorSection(f: DurableFloor): string[] {
  const row = (label: string, l: LatencySummary): string =>
    `| ${label} | ${int(l.n)} | ${fmt(l.p50Ms, 3)} | ${fmt(l.p90Ms, 3)} | ${fmt(l.p99Ms, 3)} | ${fmt(l.p999Ms, 3)} | ${fmt(l.maxMs, 2)} |`;
  return [
    '### Durable-write floor',
    '',
    `The gateway releases a call's last byte only once the call's event is on disk (\`SPOOL_FSYNC=true\`), so no call through it is faster than one durable write. What that costs on this machine's disk, with nothing else running, one ${int(f.eventBytes)}-byte event every ${fmt(1000 / f.rate, 2)} ms for ${f.seconds} s (\`bench/durable-floor.ts\`, in the directory the gateways spooled to):`,
    '',
    '| write | n | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |',
    '|---|---:|---:|---:|---:|---:|---:|',
    row('device: one O_DSYNC pwrite into zeros already on disk', f.device),
    row("spool: the gateway's append (group commit, one write in flight)", f.spool),
    '',
    "A slow device write delays every event that arrives while it is in flight, so the spool's p99 sits above the device's: these are the added latency a durable audit costs here before any proxying.",
    '',
  ];
}

function closedTable(s: ClosedScenario, systems: readonly SystemId[]): string[] {
  const sum = summarizeClosed(s, systems);
  const gw = sum.find((x) => x.system === 'gateway');
  const lines = [
    `### ${s.title}`,
    '',
    `\`GET ${s.path}\` (${int(s.bodyBytes)} B response), ${s.connections} connection${s.connections === 1 ? '' : 's'}, closed loop.`,
    '',
    '| system | req/s (median) | runs (req/s) | p50 ms | p99 ms | errors | CPU ms / 1k req | CPU cores | peak RSS MB | other CPU | gateway / system |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const x of sum) {
    const runs = s.runs
      .filter((r) => r.system === x.system)
      .map((r) => int(r.rps))
      .join(', ');
    lines.push(
      `| ${SYSTEM_LABELS[x.system]} | ${int(x.rps)} | ${runs} | ${fmt(x.p50Ms, 3)} | ${fmt(x.p99Ms, 3)} | ${x.errors} | ${fmt(x.cpuMsPer1k, 1)} | ${fmt(x.cores, 2)} | ${fmt(x.maxRssMb, 1)} | ${fmt(x.foreignCores, 2)} | ${x.system === 'gateway' ? '' : gw ? ratio(gw.rps, x.rps) : 'n/a'} |`,
    );
  }
  lines.push('');
  return lines;
}

function openTable(s: OpenScenario, systems: readonly SystemId[]): string[] {
  const sum = summarizeOpen(s, systems);
  const direct = sum.find((x) => x.system === 'direct');
  const lines = [
    `### ${s.rate.toLocaleString('en-US')} req/s, open loop`,
    '',
    `\`GET ${s.path}\` scheduled every ${fmt(1000 / s.rate, 2)} ms; latency from the scheduled send time. Medians over the rounds; max is the largest of any round.`,
    '',
    '| system | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | added p50 ms | added p99 ms | achieved req/s | errors / unanswered | client send lag p99 ms | CPU cores | peak RSS MB | other CPU |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const x of sum) {
    const a50 = direct && x.system !== 'direct' ? fmt(x.p50Ms - direct.p50Ms, 3) : '';
    const a99 = direct && x.system !== 'direct' ? fmt(x.p99Ms - direct.p99Ms, 3) : '';
    lines.push(
      `| ${SYSTEM_LABELS[x.system]} | ${fmt(x.p50Ms, 3)} | ${fmt(x.p90Ms, 3)} | ${fmt(x.p99Ms, 3)} | ${fmt(x.p999Ms, 3)} | ${fmt(x.maxMs, 2)} | ${a50} | ${a99} | ${int(x.achievedRate)} | ${x.errors} / ${x.unfinished} | ${fmt(x.sendLagP99Ms, 3)} | ${fmt(x.cores, 2)} | ${fmt(x.maxRssMb, 1)} | ${fmt(x.foreignCores, 2)} |`,
    );
  }
  lines.push('');
  return lines;
}

function streamTable(st: StreamScenario, systems: readonly SystemId[]): string[] {
  const lines = [
    `${int(st.bytes)} bytes (${Math.round(st.bytes / 1048576)} MiB) each way, one transfer at a time: \`GET /v2/_download?bytes=N\` and \`POST /v2/_upload\` (Content-Length). Medians over the rounds.`,
    '',
    '| system | download s | download MB/s | upload s | upload MB/s | failed |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const system of systems) {
    const runs = st.runs.filter((r) => r.system === system);
    if (runs.length === 0) continue;
    const dl = runs.filter((r) => r.direction === 'download' && r.ok);
    const ul = runs.filter((r) => r.direction === 'upload' && r.ok);
    lines.push(
      `| ${SYSTEM_LABELS[system]} | ${fmt(median(dl.map((r) => r.seconds)), 3)} | ${int(median(dl.map((r) => r.mbPerSecond)))} | ${fmt(median(ul.map((r) => r.seconds)), 3)} | ${int(median(ul.map((r) => r.mbPerSecond)))} | ${runs.filter((r) => !r.ok).length} |`,
    );
  }
  const growth = (st.gatewayHwmAfterKb - st.gatewayHwmBeforeKb) / 1024;
  lines.push(
    '',
    `Gateway memory (a gateway started for this scenario, warmed with small calls): RSS ${fmt(mb(st.gatewayRssBeforeKb), 1)} MB before; VmHWM ${fmt(mb(st.gatewayHwmBeforeKb), 1)} MB before, ${fmt(mb(st.gatewayHwmAfterKb), 1)} MB after every transfer: growth ${fmt(growth, 1)} MB.`,
  );
  const errs = st.runs.filter((r) => !r.ok);
  for (const e of errs) lines.push(`- FAILED: ${SYSTEM_LABELS[e.system]} ${e.direction} round ${e.round + 1}: ${e.error ?? 'unknown'}`);
  lines.push('');
  return lines;
}

function eventsSection(ev: EventsScenario): string[] {
  const w = (x: { samples: number; p50Ms: number; p99Ms: number; maxMs: number }): string =>
    x.samples > 0 ? `${fmt(x.p50Ms, 3)} / ${fmt(x.p99Ms, 3)} / ${fmt(x.maxMs, 2)} (${x.samples} calls)` : 'n/a (no calls in this window)';
  const b = ev.backlog;
  return [
    'The gateway with `AT_SINK=file,logdna`, spool and journal fsync on, the LogDNA sink delivering into the receiver process.',
    '',
    '| measurement | result |',
    '|---|---|',
    `| calls while the receiver was down (each event spooled, fsynced, journaled) | ${int(ev.drain.events)} calls at ${int(ev.drain.recordRate)} calls/s (64 connections) |`,
    `| drain of that backlog into the receiver, first delivery to last | ${int(ev.drain.steadyRate)} events/s |`,
    `| the same from the moment the receiver came back (includes the retry wait of ${int(ev.drain.retryWaitMs)} ms) | ${int(ev.drain.fromUpRate)} events/s, ${fmt(ev.drain.drainMs / 1000, 2)} s |`,
    `| live: calls with the receiver up, until the receiver had every event | ${int(ev.live.events)} calls at ${int(ev.live.callsPerSecond)} calls/s; all delivered after ${fmt(ev.live.deliveredAfterMs / 1000, 2)} s = ${int(ev.live.rate)} events/s |`,
    `| backlog: events recorded while the receiver was down | ${int(b.events)} (${b.seconds} s of calls at ${b.rate} req/s, then the first live calls) |`,
    `| backlog delivered after the receiver came back (with ${b.liveRate} req/s of live calls going on) | ${b.catchUpMs >= 0 ? `${fmt(b.catchUpMs / 1000, 2)} s = ${int(b.catchUpRate)} events/s` : 'not within the measurement'} |`,
    `| live latency at ${b.liveRate} req/s (open loop) p50 / p99 / max ms: before the receiver came back | ${w(b.before)} |`,
    `| ... while the backlog was delivered | ${w(b.during)} |`,
    `| ... after | ${w(b.after)} |`,
    `| ... whole run (errors: ${b.errors}) | ${w(b.whole)} |`,
    '',
  ];
}

export function renderMarkdown(r: Results): string {
  const m = r.machine;
  const s = r.settings;
  const out: string[] = [
    '# Benchmark results',
    '',
    `Generated by the benchmark harness (\`bench/run.ts\`) on ${m.date}, in ${Math.round(r.elapsedSeconds)} s. Do not edit: run it again.`,
    '',
    '## Machine',
    '',
    `- CPU: ${m.cpuModel}, ${m.cores} cores; ${m.memoryGiB} GiB memory; Linux ${m.kernel}`,
    `- Node ${m.node}; ${Object.entries(m.tools)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}`,
    '',
    '## How it was run',
    '',
    `- Command: \`${r.command}\` (builds \`dist/\` and \`build/\`, then \`node build/bench/run.js\`).`,
    r.source
      ? `- Gateway measured: built from commit ${r.source.commit}${r.source.uncommitted.length > 0 ? ` plus uncommitted changes to ${r.source.uncommitted.map((l) => `\`${l.replace(/^\S+\s+/, '')}\``).join(', ')}` : ' (no uncommitted changes to src/ or schemas/)'}.`
      : '- Gateway measured: the work tree as built (no git information).',
    `- Mode: ${s.mode}. ${s.rounds} round${s.rounds === 1 ? '' : 's'}; in each round every system runs once, in alternating order (forward, then reversed), and the tables show medians over the rounds. Closed loop: ${s.closedWarmupSeconds} s warm-up, then ${s.closedSeconds} s measured, with ${s.loader === 'wrk' ? '`wrk -t1 -c<N> -d<S>s` (Debian)' : '`autocannon -c <N> -d <S>` (npm)'}. Open loop: ${s.openWarmupSeconds} s warm-up, then ${s.openSeconds} s measured, with \`bench/load-worker.ts\` (undici, requests scheduled on a timer, latency measured from the scheduled time).`,
    '- The programs run are a copy of `dist/`, `build/` and `schemas/` taken when the run started, so a rebuild in the work tree during the run cannot change them.',
    `- Before each measurement the harness waits${s.quietWaitSeconds > 0 ? ` (up to ${s.quietWaitSeconds} s)` : ' (not in quick mode)'} for other processes on the machine to use less than 0.15 cores, and records what they used during the measurement ("other CPU").`,
    '- Every process is separate and on 127.0.0.1: the upstream (`bench/upstream.ts`), each system, the receiver, the load generator. They share the 2 cores: absolute numbers are noise, the ratios within one run are the result.',
    `- Every request carries an IAM-like bearer token (about 1 KB), \`accept\` and \`user-agent\`, the same for every system. Responses: ${int(r.upstream.bytes1k)} B and ${int(r.upstream.bytes64k)} B of JSON.`,
    `- The gateway: \`node dist/cli/gateway.js\` with ${Object.entries(r.gatewayEnv)
      .map(([k, v]) => `${k}=${v}`)
      .join(
        ' ',
      )}. Before each measurement the harness waits until every sink has delivered every event, so delivery left over from one measurement never takes CPU from the next.`,
    '- Baselines: the bare undici proxy (`bench/baselines/undici-proxy.ts`: node:http + undici Pool through the same dispatch-handler API the gateway uses, streaming, hop-by-hop headers removed, no auditing); express 5 + http-proxy-middleware 3 (`bench/baselines/hpm-proxy.ts`, `createProxyMiddleware({ target, changeOrigin: true })`), once with its defaults (http-proxy then uses no agent, so every call opens a new upstream connection and sends `Connection: close`) and once with a keep-alive `http.Agent` (256 sockets), what a careful team writes; the audit middleware (`bench/baselines/express-audit.ts`: `app.use(createAuditMiddleware(config), proxy)` on a server made with its `serverOptions`, with the same settings and sinks as the gateway) in front of that keep-alive http-proxy-middleware and in front of `createCodeEngineProxy`; nginx (`bench/baselines/nginx.conf.template`: `proxy_pass` to an upstream block with `keepalive`, `proxy_http_version 1.1`, `Connection ""`, `access_log off`, buffering off, and `worker_processes 1`: each Node system runs one main thread on this 2-core machine, so nginx gets one worker too).',
    '',
  ];
  if (r.notes.length > 0) {
    out.push('Notes of this run:', '');
    for (const n of r.notes) out.push(`- ${n}`);
    out.push('');
  }
  out.push('## Targets', '', '| target | measured | result |', '|---|---|---|');
  for (const t of r.targets) out.push(`| ${t.text} | ${t.measured} | ${t.pass ? 'PASS' : 'MISS'} |`);
  out.push('');
  out.push('## Throughput (closed loop)', '');
  for (const c of r.closed) out.push(...closedTable(c, r.systems));
  out.push(
    'CPU ms / 1k req: CPU time of the system\'s own processes (for "direct", the upstream itself) per 1,000 requests. CPU cores: that CPU time over the wall time. Peak RSS: the highest RSS sampled every 100 ms. Other CPU: the most CPU (cores) that processes outside the benchmark used during any round, from /proc/stat less the benchmark\'s own processes; above about 0.1 the round shared the machine with something else.',
    '',
  );
  out.push('## Latency (open loop)', '');
  for (const o of r.open) out.push(...openTable(o, r.systems));
  if (r.durableFloor) out.push(...floorSection(r.durableFloor));
  if (r.integrity) out.push('### Cost of the audit chain', '', ...integrityLines(r.integrity));
  if (r.stream) out.push('## Streaming', '', ...streamTable(r.stream, r.systems));
  if (r.events) out.push('## Audit events', '', ...eventsSection(r.events));
  out.push(
    '## Gateway memory',
    '',
    `VmHWM of the gateway that served every throughput and latency scenario above, after them: ${fmt(mb(r.gatewayHwmAfterLoadKb), 1)} MB.`,
    '',
  );
  if (r.profile) {
    const p = r.profile;
    out.push(
      '## Profile of the gateway',
      '',
      `\`${p.command}\` under ${p.seconds} s of 64 connections on the 1 KB call (${int(p.rps)} req/s while profiled; the profiler slows it down). ${p.summary.busyMs} ms of ${p.summary.totalMs} ms sampled were busy; percentages are of busy time.`,
      '',
      'Self time by area:',
      '',
      '| area | ms | % |',
      '|---|---:|---:|',
      ...p.summary.areas.slice(0, 15).map((a) => `| ${cell(a.name)} | ${a.ms} | ${a.percent.toFixed(1)} |`),
      '',
      "The gateway's own files by self time:",
      '',
      '| file | ms | % |',
      '|---|---:|---:|',
      ...p.summary.files.filter((f) => f.file.startsWith('src/')).map((f) => `| ${f.file} | ${f.ms} | ${f.percent.toFixed(1)} |`),
      '',
      'Where the time goes in the gateway: every sample charged to the innermost `src/` function on its stack (so node, undici and native work done on its behalf counts for it):',
      '',
      '| % | ms | function | file |',
      '|---:|---:|---|---|',
      ...(p.summary.bySrcCaller ?? []).map((f) => `| ${f.percent.toFixed(1)} | ${f.ms} | \`${cell(f.name)}\` | ${cell(f.file)} |`),
      '',
      'Top functions by self time:',
      '',
      '| % | ms | function | file |',
      '|---:|---:|---|---|',
      ...p.summary.functions.map((f) => `| ${f.percent.toFixed(1)} | ${f.ms} | \`${cell(f.name)}\` | ${cell(f.file)} |`),
      '',
    );
  }
  return `${out.join('\n')}\n`;
}
