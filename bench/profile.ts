/**
 * Summary of a V8 CPU profile (`node --cpu-prof`): self time per function (name + file), the top N, and self
 * time per file, with the gateway's own files named by their source path (dist/x.js -> src/x.ts).
 * Also a command: node build/bench/profile.js <file.cpuprofile> [top]
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  file: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Time not idle: everything but "(idle)". */
  busyMs: number;
  functions: SelfTime[];
  files: SelfTime[];
  /** Self time by area: the gateway's src/, undici, node internals, pino, GC, ... */
  areas: SelfTime[];
  /**
   * Every sample charged to the innermost gateway function (src/) on its stack, so that the time spent in
   * node, undici or native code on a gateway function's behalf counts for that function. Samples with no
   * gateway frame are grouped under "(no gateway frame)" by the area of their own frame.
   */
  bySrcCaller: SelfTime[];
}

/** dist/proxy/proxy-call.js (or build/src/..., the audit middleware in the benchmark) -> src/proxy/proxy-call.ts; node_modules/<pkg>/... -> <pkg>/...; node:internal kept. */
export function shortFile(url: string): string {
  if (url === '') return '';
  const plain = url.replace(/^file:\/\//, '');
  const dist = /\/(?:dist|build\/src)\/(.+)\.js$/.exec(plain);
  if (dist && !plain.includes('/node_modules/')) return `src/${dist[1]}.ts`;
  const nm = plain.lastIndexOf('/node_modules/');
  if (nm >= 0) return plain.slice(nm + '/node_modules/'.length);
  return plain;
}

function areaOf(name: string, file: string): string {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)') return 'idle';
  if (name === '(program)') return 'V8/native (program)';
  if (file.startsWith('src/')) return `gateway ${file.split('/').slice(0, 2).join('/')}`;
  if (file.startsWith('node:')) return 'node internals';
  if (file === '') return 'native/builtin';
  const pkg = file.startsWith('@') ? file.split('/').slice(0, 2).join('/') : (file.split('/')[0] ?? file);
  return `npm ${pkg}`;
}

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i] as number;
    // timeDeltas[i] is the time before sample i; the sample's own duration is the next delta.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const callerCache = new Map<number, string>();
  /** The innermost src/ frame at or above a node, as "name\u0000file", or a "(no gateway frame)" bucket. */
  const srcCaller = (id: number): string => {
    const cached = callerCache.get(id);
    if (cached !== undefined) return cached;
    let key: string | undefined;
    for (let at: number | undefined = id, guard = 0; at !== undefined && guard < 10_000; at = parent.get(at), guard++) {
      const node = byId.get(at);
      if (!node) break;
      const f = shortFile(node.callFrame.url);
      if (f.startsWith('src/')) {
        key = `${node.callFrame.functionName || '(anonymous)'}\u0000${f}`;
        break;
      }
    }
    if (key === undefined) {
      const own = byId.get(id);
      const name = own?.callFrame.functionName || '(anonymous)';
      key = `(no gateway frame: ${areaOf(name, shortFile(own?.callFrame.url ?? ''))})\u0000`;
    }
    callerCache.set(id, key);
    return key;
  };
  const callers = new Map<string, number>();
  const fn = new Map<string, { name: string; file: string; us: number }>();
  const files = new Map<string, number>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const name = node.callFrame.functionName || '(anonymous)';
    const f = shortFile(node.callFrame.url);
    total += us;
    if (name === '(idle)') idle += us;
    const key = `${name}\u0000${f}`;
    const entry = fn.get(key) ?? { name, file: f, us: 0 };
    entry.us += us;
    fn.set(key, entry);
    files.set(f || name, (files.get(f || name) ?? 0) + us);
    const area = areaOf(name, f);
    areas.set(area, (areas.get(area) ?? 0) + us);
    if (name !== '(idle)') {
      const caller = srcCaller(id);
      callers.set(caller, (callers.get(caller) ?? 0) + us);
    }
  }
  const busy = total - idle;
  const pct = (us: number): number => Math.round((us / (busy || 1)) * 1000) / 10;
  const ms = (us: number): number => Math.round(us / 100) / 10;
  const sorted = [...fn.values()].filter((e) => e.name !== '(idle)').sort((a, b) => b.us - a.us);
  return {
    totalMs: ms(total),
    busyMs: ms(busy),
    functions: sorted.slice(0, top).map((e) => ({ name: e.name, file: e.file, ms: ms(e.us), percent: pct(e.us) })),
    files: [...files.entries()]
      .filter(([f]) => f !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top * 4)
      .map(([f, us]) => ({ name: '', file: f, ms: ms(us), percent: pct(us) })),
    areas: [...areas.entries()]
      .filter(([a]) => a !== 'idle')
      .sort((a, b) => b[1] - a[1])
      .map(([a, us]) => ({ name: a, file: '', ms: ms(us), percent: pct(us) })),
    bySrcCaller: [...callers.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([key, us]) => {
        const [name = '', file = ''] = key.split('\u0000');
        return { name, file, ms: ms(us), percent: pct(us) };
      }),
  };
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node build/bench/profile.js <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const s = summarizeProfile(file, Number(process.argv[3] ?? '25'));
  process.stdout.write(`profile: ${s.totalMs} ms sampled, ${s.busyMs} ms busy (percentages of busy time)\n\n`);
  for (const f of s.functions)
    process.stdout.write(`${f.percent.toFixed(1).padStart(5)}%  ${String(f.ms).padStart(8)} ms  ${f.name}  ${f.file}\n`);
  process.stdout.write('\ncharged to the innermost gateway function on the stack:\n');
  for (const f of s.bySrcCaller)
    process.stdout.write(`${f.percent.toFixed(1).padStart(5)}%  ${String(f.ms).padStart(8)} ms  ${f.name}  ${f.file}\n`);
  process.stdout.write('\nby area:\n');
  for (const a of s.areas) process.stdout.write(`${a.percent.toFixed(1).padStart(5)}%  ${String(a.ms).padStart(8)} ms  ${a.name}\n`);
}
