/**
 * The gateway as operators run it: the `ce-audit-gateway` command (`node dist/cli/gateway.js`, built by `npm test`'s
 * pretest step) in its own process, so tests can measure its memory and send it signals.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const ENTRY = path.resolve(__dirname, '..', '..', 'dist', 'cli', 'gateway.js');

export interface GatewayProcess {
  child: ChildProcess;
  pid: number;
  proxyUrl: string;
  adminUrl: string;
  output: () => string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Peak resident set size so far, in bytes (Linux /proc). */
  peakRss: () => number;
  kill: (signal?: NodeJS.Signals) => void;
}

export function spawnGateway(
  env: Record<string, string>,
  options: { cwd?: string; timeoutMs?: number; nodeArgs?: string[] } = {},
): Promise<GatewayProcess> {
  if (!existsSync(ENTRY)) throw new Error(`${ENTRY} is missing: run "npm run build" (npm test does it first)`);
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ENTRY], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway did not start within ${options.timeoutMs ?? 10000} ms:\n${output}`));
    }, options.timeoutMs ?? 10000);
    const onData = (): void => {
      const line = output.split('\n').find((l) => l.includes('"ce-audit-gateway listening"'));
      if (!line) return;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      const started = JSON.parse(line) as { proxy: string; admin: string };
      const pid = child.pid as number;
      resolve({
        child,
        pid,
        proxyUrl: started.proxy,
        adminUrl: started.admin,
        output: () => output,
        exited,
        peakRss: () => {
          const status = readFileSync(`/proc/${pid}/status`, 'utf8');
          const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
          return Number(kb) * 1024;
        },
        kill: (signal = 'SIGTERM') => child.kill(signal),
      });
    };
    child.stdout?.on('data', onData);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code ?? signal}) before listening:\n${output}`));
    });
  });
}
