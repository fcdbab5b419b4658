/**
 * The package as another project uses it, from dist/ (built by `npm test`'s pretest step): `require` and `import`
 * by its name start nothing, the package ships its types, entry and command, and the example app in examples/
 * compiles against the published types and runs, auditing what it forwards.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startFakeCodeEngine } from '../support/fake-code-engine';
import { waitForJournal } from '../support/harness';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  name: string;
  main: string;
  types: string;
  bin: Record<string, string>;
  exports: Record<string, unknown>;
};
const API = [
  'GatewayError',
  'createAuditMiddleware',
  'createCodeEngineProxy',
  'httpErrorFor',
  'loadConfig',
  'startGateway',
  'upstreamUrlOf',
];

/** Node, in the project's directory: there, the package's own name resolves to it through "exports". */
async function node(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, args, { cwd: root, timeout: 30_000, env: { PATH: process.env.PATH ?? '' } });
  return stdout;
}

// Resources other than the standard streams (which express, pino and undici open when they are loaded).
const PROBE = `
  const open = () => process.getActiveResourcesInfo().filter((r) => r !== 'PipeWrap' && r !== 'TTYWrap').length;
  const handles = open();
  const listeners = ['SIGTERM', 'SIGINT', 'exit', 'uncaughtException'].map((e) => process.listenerCount(e));
  const report = (g) => console.log(JSON.stringify({
    keys: Object.keys(g).filter((k) => k !== 'default' && k !== '__esModule').sort(),
    handles: open() - handles,
    listeners: ['SIGTERM', 'SIGINT', 'exit', 'uncaughtException'].map((e) => process.listenerCount(e)).join() === listeners.join(),
  }));`;

test('require by name: the API, and nothing started (no handle, no listener; the process exits by itself)', async () => {
  const out = JSON.parse(await node(['-e', `${PROBE} report(require('${pkg.name}'));`]));
  expect(out).toEqual({ keys: API, handles: 0, listeners: true });
});

test('import by name from an ES module: the same named exports', async () => {
  const out = JSON.parse(await node(['--input-type=module', '-e', `${PROBE} import * as g from '${pkg.name}'; report(g);`]));
  expect(out).toEqual({ keys: API, handles: 0, listeners: true });
});

test('package.json: entry, types, exports and the command, all present in dist/', () => {
  expect(pkg.main).toBe('dist/index.js');
  expect(pkg.types).toBe('dist/index.d.ts');
  expect(pkg.exports['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
  // Launchers (tsc makes no file executable, npm marks bins so), each running its command from dist/.
  expect(pkg.bin).toEqual({ 'ce-audit-gateway': 'bin/ce-audit-gateway.js', 'ce-audit': 'bin/ce-audit.js' });
  for (const file of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/gateway.js', 'dist/cli/main.js'])
    expect(existsSync(path.join(root, file))).toBe(true);
  expect(readFileSync(path.join(root, 'bin/ce-audit-gateway.js'), 'utf8')).toMatch(
    /^#!\/usr\/bin\/env node\n[\s\S]*'dist', 'cli', 'gateway\.js'/,
  );
  expect(readFileSync(path.join(root, 'bin/ce-audit.js'), 'utf8')).toMatch(/^#!\/usr\/bin\/env node\n[\s\S]*'dist', 'cli', 'main\.js'/);
});

test('the packed package holds the build and the schemas, not the sources or the tests', async () => {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json'], { cwd: root, timeout: 60_000 });
  const files = (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]?.files.map((f) => f.path) ?? [];
  for (const f of [
    'dist/index.js',
    'dist/index.d.ts',
    'dist/cli/gateway.js',
    'dist/delivery/thread.js',
    'schemas/route-catalog.json',
    'package.json',
  ])
    expect(files).toContain(f);
  expect(files.filter((f) => /^(src|test|bench|examples)\//.test(f))).toEqual([]);
});

test('the command reports a bad setting and exits 2, as the gateway always did', async () => {
  const child = spawn(process.execPath, [path.join(root, pkg.bin['ce-audit-gateway'] as string)], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', CE_REGION: 'mars' },
  });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  expect(code).toBe(2);
  expect(err).toMatch(/^ce-audit-gateway: Invalid configuration: CE_REGION="mars" is not valid/);
});

test('the example app compiles against the published types, runs, and audits what it forwards', async () => {
  // Compiled inside the project (build/examples), so that 'ce-audit-gateway' resolves to this package.
  await run(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'examples/tsconfig.json'], {
    cwd: root,
    timeout: 120_000,
  });
  const upstream = await startFakeCodeEngine();
  const dir = await mkdtemp(path.join(tmpdir(), 'ce-audit-example-'));
  const child = spawn(process.execPath, [path.join(root, 'build/examples/express-app/app.js')], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? '',
      APP_PORT: '0',
      CE_API_URL: upstream.url,
      CE_KUBE_API_URL: upstream.url,
      AT_FILE_DIR: path.join(dir, 'audit'),
      SPOOL_DIR: path.join(dir, 'spool'),
      BATCH_MAX_WAIT_MS: '20',
      LOG_LEVEL: 'warn',
    },
  });
  try {
    let out = '';
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the example did not start:\n${out}`)), 20_000);
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const line = out.split('\n').find((l) => l.includes('example app listening'));
        if (line) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { url: string }).url);
        }
      });
    });
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });
    const created = await fetch(`${url}/codeengine/v2/projects`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-transaction-id': 'example-1' },
      body: JSON.stringify({ name: 'from-the-example' }),
    });
    expect(created.status).toBe(202);
    expect(created.headers.get('x-transaction-id')).toBe('example-1');
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/ce_audit_events_recorded_total\{region="us-south"\} 1/);
    const events = await waitForJournal(path.join(dir, 'audit'), 1);
    expect(events.map((e) => [e.transactionID, e.action, e.target.name])).toEqual([
      ['example-1', 'codeengine.project.create', 'from-the-example'],
    ]);
    // Only the audited call reached Code Engine.
    expect(upstream.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v2/projects']);
    child.kill('SIGTERM');
    expect(await new Promise<number | null>((resolve) => child.on('exit', resolve))).toBe(0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  }
}, 180_000);
