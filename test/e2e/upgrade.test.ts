/**
 * kubectl exec / attach / port-forward switch protocols (SPDY or WebSocket). The gateway tunnels the upgraded
 * connection byte for byte, and audits the call before the client gets its 101.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { startHarness, type Harness } from '../support/harness';

let upstream: Server;
let h: Harness;
const seen: string[] = [];
const upgraded = new Set<Socket>();

beforeAll(async () => {
  upstream = createServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', status: 'Failure', message: 'not an upgrade', code: 404 }));
  });
  upstream.on('upgrade', (req, socket: Socket, head: Buffer) => {
    // Upgraded sockets are no longer the http server's: end them with their peer, destroy them at the end.
    upgraded.add(socket);
    socket.on('end', () => socket.end());
    seen.push(`${req.method} ${req.url} upgrade=${req.headers.upgrade} corr=${req.headers['x-correlation-id']}`);
    if (req.url?.includes('/pods/forbidden/')) {
      const body = JSON.stringify({ kind: 'Status', status: 'Failure', message: 'pods "forbidden" is forbidden', code: 403 });
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      return;
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${req.headers.upgrade}\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n`,
    );
    if (head.length) socket.write(head);
    // Echo, upper-cased, so the test sees its bytes went through the upstream.
    socket.on('data', (c: Buffer) => socket.write(c.toString('latin1').toUpperCase()));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  h = await startHarness({ CE_KUBE_API_URL: url, CE_API_URL: url, ACTION_CATALOG: 'current' });
});
afterAll(async () => {
  await h.close();
  upstream.closeAllConnections();
  for (const s of upgraded) s.destroy();
  await new Promise<void>((r) => upstream.close(() => r()));
});

function rawUpgrade(path: string, txId: string): Promise<{ socket: Socket; head: () => string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(h.url).port), '127.0.0.1');
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('error', reject);
    socket.once('connect', () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Transaction-Id: ${txId}\r\nContent-Length: 0\r\n\r\n`,
      );
      resolve({ socket, head: () => text });
    });
  });
}

async function recordedCount(): Promise<number> {
  const metric = await h.gateway.metrics.eventsRecorded.get();
  return metric.values.reduce((sum, v) => sum + v.value, 0);
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

test('exec is tunnelled both ways and audited as codeengine.pods.exec, critical', async () => {
  const recordedBefore = await recordedCount();
  const { socket, head } = await rawUpgrade('/api/v1/namespaces/ns1/pods/web-1/exec?command=sh&stdin=true&tty=true', 'up-exec');
  await until(() => head().includes('\r\n\r\n'));
  // The event was in the spool before the 101 reached the client.
  expect(await recordedCount()).toBe(recordedBefore + 1);
  expect(head()).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
  expect(head()).toMatch(/X-Transaction-Id: up-exec\r\n/);
  const before = await h.eventsFor('up-exec');
  expect(before).toHaveLength(1);
  expect(before[0]).toMatchObject({
    action: 'codeengine.pods.exec',
    outcome: 'success',
    severity: 'critical',
    reason: { reasonCode: 101 },
    target: { name: 'web-1' },
  });
  socket.write('echo hello\n');
  await until(() => head().includes('ECHO HELLO'));
  expect(head()).toContain('ECHO HELLO');
  socket.destroy();
  expect(
    seen.some(
      (s) =>
        s.startsWith('POST /api/v1/namespaces/ns1/pods/web-1/exec?command=sh') &&
        s.includes('upgrade=SPDY/3.1') &&
        s.includes('corr=up-exec'),
    ),
  ).toBe(true);
});

test('a refused upgrade is passed back as is and audited as a failure', async () => {
  const { socket, head } = await rawUpgrade('/api/v1/namespaces/ns1/pods/forbidden/attach?stdin=true', 'up-403');
  await until(() => head().includes('is forbidden'));
  socket.destroy();
  expect(head()).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
  await until(() => false, 100);
  const events = (await h.events()).filter((e) => e.transactionID === 'up-403');
  expect(events).toHaveLength(1);
  expect(events[0]).toMatchObject({
    action: 'codeengine.pods.attach',
    outcome: 'failure',
    severity: 'critical',
    reason: { reasonCode: 403, reasonForFailure: 'pods "forbidden" is forbidden' },
  });
});

test('stopping the gateway ends open exec sessions instead of waiting for them', async () => {
  const { socket, head } = await rawUpgrade('/api/v1/namespaces/ns1/pods/web-2/exec?command=sh', 'up-stop');
  await until(() => head().includes('\r\n\r\n'));
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  const started = Date.now();
  await h.gateway.stop();
  await closed;
  expect(Date.now() - started).toBeLessThan(2000);
});
