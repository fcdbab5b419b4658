/**
 * The gateway as a process: starts with no configuration at all on its embedded defaults, refuses a bad
 * configuration naming the setting, and shuts down cleanly on SIGTERM after the calls in flight.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFakeCodeEngine } from '../support/fake-code-engine';
import { ENTRY, spawnGateway } from '../support/gateway-process';
import { readJournal } from '../support/harness';

let cwd: string;
beforeEach(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'ce-audit-proc-'));
});
afterEach(async () => {
  await rm(cwd, { recursive: true, force: true });
});

test('no configuration: listens on 127.0.0.1:8080 and :9090 against the real Code Engine endpoints', async () => {
  const gw = await spawnGateway({}, { cwd });
  try {
    expect(gw.proxyUrl).toBe('http://127.0.0.1:8080');
    expect(gw.adminUrl).toBe('http://127.0.0.1:9090');
    const started = JSON.parse(
      gw
        .output()
        .split('\n')
        .find((l) => l.includes('listening')) as string,
    ) as {
      region: string;
      edition: string;
      upstreams: { api: { origin: string }; kube: { origin: string } };
    };
    expect(started).toMatchObject({
      region: 'us-south',
      edition: '2020',
      upstreams: {
        api: { origin: 'https://api.us-south.codeengine.cloud.ibm.com' },
        kube: { origin: 'https://proxy.us-south.codeengine.cloud.ibm.com' },
      },
    });
    expect(await (await fetch(`${gw.adminUrl}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    expect(ready.status).toBe(200);
    // The admin routes are not on the proxy port (there they would be Code Engine paths).
    expect((await fetch(`${gw.adminUrl}/v2/projects`)).status).toBe(404);
  } finally {
    gw.kill('SIGTERM');
  }
  expect(await gw.exited).toEqual({ code: 0, signal: null });
});

test.each([
  [{ CE_REGION: 'mars' }, /CE_REGION="mars" is not valid: expected one of us-south, us-east/],
  [{ PORT: 'eighty' }, /PORT="eighty" is not valid: expected an integer from 0 to 65535/],
  [
    { ACTION_CATALOG: '2019', AT_FILE_FSYNC: 'maybe' },
    /ACTION_CATALOG="2019".*AT_FILE_FSYNC="maybe"|AT_FILE_FSYNC="maybe".*ACTION_CATALOG="2019"/,
  ],
])('bad configuration %j stops the process with exit 2 and a message naming it', async (env, message) => {
  const child = spawn(process.execPath, [ENTRY], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code).toBe(2);
  expect(stderr).toMatch(message);
});

test('SIGTERM: the call in flight completes and is audited, then the process exits 0', async () => {
  const upstream = await startFakeCodeEngine();
  const dir = path.join(cwd, 'audit');
  const gw = await spawnGateway({
    PORT: '0',
    ADMIN_PORT: '0',
    CE_API_URL: upstream.url,
    CE_KUBE_API_URL: upstream.url,
    AT_FILE_DIR: dir,
    SPOOL_DIR: path.join(cwd, 'spool'),
  });
  try {
    const inFlight = new Promise<number>((resolve, reject) => {
      httpRequest(
        `${gw.proxyUrl}/v2/function_runtimes`,
        { headers: { 'x-fake-delay-ms': '500', 'x-transaction-id': 'in-flight' } },
        (res) => {
          res.resume().on('end', () => resolve(res.statusCode ?? 0));
        },
      )
        .on('error', reject)
        .end();
    });
    await new Promise((r) => setTimeout(r, 150));
    gw.kill('SIGTERM');
    expect(await inFlight).toBe(200);
    expect(await gw.exited).toEqual({ code: 0, signal: null });
    const { events } = await readJournal(dir);
    expect(events.map((e) => [e.transactionID, e.action, e.outcome])).toEqual([
      ['in-flight', 'codeengine.functionruntime.read', 'success'],
    ]);
  } finally {
    gw.kill('SIGKILL');
    await upstream.close();
  }
});
