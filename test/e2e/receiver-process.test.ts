/**
 * The receiver as the demo runs it: `node dist/receiver/main.js` (built by `npm test`'s pretest step; set
 * RECEIVER_MAIN to run another build), configured from the environment, closing on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const ENTRY = process.env.RECEIVER_MAIN ?? path.resolve(__dirname, '..', '..', 'dist', 'receiver', 'main.js');
const KEY = 'demo-ingest-key-41c7';

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function run(env: Record<string, string>): Started {
  if (!existsSync(ENTRY)) throw new Error(`${ENTRY} is missing: run "npm run build" (npm test does it first)`);
  const child = spawn(process.execPath, [ENTRY], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => output, exited };
}

async function listening(started: Started): Promise<Record<string, string>> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const line = started
      .output()
      .split('\n')
      .find((l) => l.includes('"receiver listening"'));
    if (line) return JSON.parse(line) as Record<string, string>;
    if (Date.now() > deadline || started.child.exitCode !== null) throw new Error(`receiver did not start:\n${started.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('starts from the environment, prints its URLs, serves events and exits 0 on SIGTERM', async () => {
  const started = run({ RECEIVER_PORT: '0', RECEIVER_LOGDNA_KEYS: `us-south=${KEY}`, RECEIVER_IAM_API_KEYS: 'iam-1' });
  try {
    const info = await listening(started);
    expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(info).toEqual({
      msg: 'receiver listening',
      url: info.url,
      logdnaUrlTemplate: `${info.url}/logdna/{region}/logs/ingest`,
      cloudLogsUrlTemplate: `${info.url}/cloud-logs/{region}/logs/v1/singles`,
      iamTokenUrl: `${info.url}/identity/token`,
    });
    const ingest = await fetch(`${(info.logdnaUrlTemplate as string).replace('{region}', 'us-south')}?hostname=demo`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${KEY}:`).toString('base64')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ lines: [{ line: JSON.stringify({ action: 'codeengine.app.get' }), timestamp: Date.now() }] }),
    });
    expect(ingest.status).toBe(200);
    const events = (await (await fetch(`${info.url}/_events?region=us-south`)).json()) as Array<{ event: unknown }>;
    expect(events.map((e) => e.event)).toEqual([{ action: 'codeengine.app.get' }]);
    expect(started.output()).not.toContain(KEY);
  } finally {
    started.child.kill('SIGTERM');
  }
  expect(await started.exited).toEqual({ code: 0, signal: null });
});

test('refuses a bad environment with exit 2, naming the setting but not the key', async () => {
  const started = run({ RECEIVER_LOGDNA_KEYS: 'no-region-secret' });
  expect(await started.exited).toEqual({ code: 2, signal: null });
  expect(started.output()).toMatch(/RECEIVER_LOGDNA_KEYS is not valid/);
  expect(started.output()).not.toContain('no-region-secret');
});
