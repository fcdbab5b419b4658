/**
 * What the audit middleware cannot see from inside an Express app, covered by attach(server): upgrades (kubectl
 * exec) under its mount path are audited and tunnelled by createCodeEngineProxy, requests Node's parser refuses
 * under the mount path are audited (others are only answered), and without attach those go unseen.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { metricValue, startExpressHarness, type ExpressHarness } from '../support/express-harness';
import { closeNow } from '../support/listen';
import { until } from '../support/load';
import { rawRequest } from '../support/raw-http';

let upstream: Server;
const upgraded = new Set<Socket>();
const seen: string[] = [];

beforeAll(async () => {
  upstream = createServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"kind":"Status","message":"not an upgrade","code":404}');
  });
  upstream.on('upgrade', (req, socket: Socket) => {
    upgraded.add(socket);
    socket.on('end', () => socket.end());
    seen.push(`${req.method} ${req.url} corr=${req.headers['x-correlation-id']}`);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${req.headers.upgrade}\r\n\r\n`);
    socket.on('data', (c: Buffer) => socket.write(c.toString('latin1').toUpperCase()));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
});
afterAll(async () => {
  for (const s of upgraded) s.destroy();
  await closeNow(upstream);
});

const upstreamUrl = (): string => `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

function rawUpgrade(port: number, path: string, txId: string): Promise<{ socket: Socket; text: () => string; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('close', () => (closed = true));
    socket.on('error', reject);
    socket.once('connect', () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Transaction-Id: ${txId}\r\nContent-Length: 0\r\n\r\n`,
      );
      resolve({ socket, text: () => text, closed: () => closed });
    });
  });
}

describe('attached, with createCodeEngineProxy for upgrades', () => {
  let h: ExpressHarness;
  let port: number;
  beforeAll(async () => {
    h = await startExpressHarness(
      { CE_API_URL: upstreamUrl(), CE_KUBE_API_URL: upstreamUrl(), ACTION_CATALOG: 'current' },
      { proxy: 'ce-proxy' },
    );
    port = Number(new URL(h.appUrl).port);
  });
  afterAll(() => h.close());

  test('kubectl exec under the mount path is audited before the 101, then tunnelled both ways', async () => {
    const before = metricValue(await h.metrics(), 'ce_audit_events_recorded_total');
    const up = await rawUpgrade(port, '/ce/api/v1/namespaces/ns1/pods/web-1/exec?command=sh&stdin=true', 'att-exec');
    expect(await until(() => up.text().includes('\r\n\r\n'), 3000, 10)).toBe(true);
    expect(metricValue(await h.metrics(), 'ce_audit_events_recorded_total')).toBe(before + 1);
    expect(up.text()).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    expect(up.text()).toMatch(/X-Transaction-Id: att-exec\r\n/);
    up.socket.write('echo hi\n');
    expect(await until(() => up.text().includes('ECHO HI'), 3000, 10)).toBe(true);
    up.socket.destroy();
    expect(seen).toContain('POST /api/v1/namespaces/ns1/pods/web-1/exec?command=sh&stdin=true corr=att-exec');
    const [e] = await h.eventsFor('att-exec');
    expect(e).toMatchObject({
      action: 'codeengine.pods.exec',
      severity: 'critical',
      outcome: 'success',
      reason: { reasonCode: 101 },
      requestData: { path: '/api/v1/namespaces/ns1/pods/web-1/exec' },
    });
  });

  test('an upgrade outside the mount path is not ours: closed, never forwarded', async () => {
    const count = seen.length;
    const up = await rawUpgrade(port, '/elsewhere/api/v1/namespaces/ns1/pods/web-1/exec', 'att-other');
    expect(await until(() => up.closed(), 3000, 10)).toBe(true);
    expect(seen.length).toBe(count);
    expect(await h.eventsFor('att-other', 300)).toEqual([]);
  });

  test("a request Node's parser refuses under the mount path is answered in JSON and audited by its request line", async () => {
    const res = await rawRequest(port, 'GET /ce/v2/projects/marker-attach HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).errors[0].message).toMatch(/refused/);
    const events = (await h.events()).filter((e) => e.requestData.path === '/v2/projects/marker-attach');
    expect(events).toHaveLength(1);
    expect(events[0]?.reason.reasonCode).toBe(400);
  });

  test('one outside the mount path is answered, not audited', async () => {
    const before = metricValue(await h.metrics(), 'ce_audit_events_recorded_total');
    const res = await rawRequest(port, 'GET /app/marker-outside HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n');
    expect(res.status).toBe(400);
    await new Promise((r) => setTimeout(r, 100));
    expect(metricValue(await h.metrics(), 'ce_audit_events_recorded_total')).toBe(before);
  });

  test('close() ends open exec sessions rather than waiting for them', async () => {
    const up = await rawUpgrade(port, '/ce/api/v1/namespaces/ns1/pods/web-2/exec?command=sh', 'att-close');
    expect(await until(() => up.text().includes('\r\n\r\n'), 3000, 10)).toBe(true);
    const started = Date.now();
    await h.audit.close();
    expect(await until(() => up.closed(), 2000, 10)).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('not attached', () => {
  let h: ExpressHarness;
  beforeAll(async () => {
    h = await startExpressHarness({}, { proxy: 'ce-proxy', attach: false });
  });
  afterAll(() => h.close());

  test("Node's parser refusals are Node's own answer, and no event: what attach(server) is for", async () => {
    const port = Number(new URL(h.appUrl).port);
    const res = await rawRequest(port, 'GET /ce/v2/projects/marker-unattached HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n');
    expect(res.status).toBe(400);
    expect(res.head).not.toMatch(/application\/json/i);
    expect(metricValue(await h.metrics(), 'ce_audit_events_recorded_total')).toBe(0);
  });
});
