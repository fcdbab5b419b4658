/**
 * The gateway can never be used to reach anything but its configured upstreams. A canary server counts every
 * connection made to it; every attempt below tries to steer a request there; the canary must see none.
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startHarness, type Harness } from '../support/harness';
import { rawRequest } from '../support/raw-http';

let canary: NetServer;
let canaryPort: number;
let canaryConnections = 0;
const canarySockets = new Set<Socket>();
let redirector: Server;
let h: Harness;
let port: number;

beforeAll(async () => {
  canary = createServer((socket) => {
    canaryConnections++;
    canarySockets.add(socket);
    socket.destroy();
  });
  await new Promise<void>((r) => canary.listen(0, '127.0.0.1', r));
  canaryPort = (canary.address() as AddressInfo).port;
  // The Kubernetes upstream answers every call with a redirect to the canary: redirects must not be followed.
  redirector = createHttpServer((_req, res) => {
    res.writeHead(302, { location: `http://127.0.0.1:${canaryPort}/stolen`, 'content-length': '0' }).end();
  });
  await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
  h = await startHarness({ CE_KUBE_API_URL: `http://127.0.0.1:${(redirector.address() as AddressInfo).port}` });
  port = Number(new URL(h.url).port);
});
afterAll(async () => {
  await h.close();
  await new Promise<void>((r) => redirector.close(() => r()));
  await new Promise<void>((r) => canary.close(() => r()));
});

const C = (): string => `127.0.0.1:${canaryPort}`;

const ATTEMPTS: Array<[string, () => string]> = [
  ['absolute-form target', () => `GET http://${C()}/v2/projects HTTP/1.1\r\nHost: ${C()}\r\n\r\n`],
  ['absolute-form https target', () => `GET https://${C()}/v2/projects HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['Host header', () => `GET /v2/projects HTTP/1.1\r\nHost: ${C()}\r\n\r\n`],
  ['X-Forwarded-Host', () => `GET /v2/projects HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host: ${C()}\r\n\r\n`],
  ['Forwarded header', () => `GET /v2/projects HTTP/1.1\r\nHost: x\r\nForwarded: host=${C()};proto=http\r\n\r\n`],
  [
    'X-Original-URL',
    () => `GET /v2/projects HTTP/1.1\r\nHost: x\r\nX-Original-URL: http://${C()}/\r\nX-Rewrite-URL: http://${C()}/\r\n\r\n`,
  ],
  ['CONNECT', () => `CONNECT ${C()} HTTP/1.1\r\nHost: ${C()}\r\n\r\n`],
  ['scheme-relative path', () => `GET //${C()}/v2/projects HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['userinfo-looking path', () => `GET /@${C()}/v2/projects HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['dot-dot out of the API', () => `GET /v2/../../${C()}/ HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['region prefix naming the canary', () => `GET /regions/${C()}/v2/projects HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['region prefix, encoded', () => `GET /regions/127.0.0.1%3A${canaryPort}/v2/projects HTTP/1.1\r\nHost: x\r\n\r\n`],
  [
    'upgrade with a canary Host',
    () => `GET /api/v1/namespaces/n/pods/p/exec HTTP/1.1\r\nHost: ${C()}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
  ],
  ['proxy-style request line with port', () => `GET ${C()}/v2/projects HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['upstream redirect to the canary', () => `GET /api/v1/namespaces/n/pods HTTP/1.1\r\nHost: x\r\n\r\n`],
  [
    'Proxy-Authorization and Proxy-Connection',
    () => `GET /v2/projects HTTP/1.1\r\nHost: ${C()}\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\n\r\n`,
  ],
];

test.each(ATTEMPTS)('%s: no connection to anything but the configured upstreams', async (_name, build) => {
  const res = await rawRequest(port, build());
  expect(res.status).toBeGreaterThanOrEqual(200);
  expect(canaryConnections).toBe(0);
});

test('an upstream redirect is returned to the client, never followed', async () => {
  const res = await rawRequest(port, 'GET /api/v1/namespaces/n/configmaps HTTP/1.1\r\nHost: x\r\nX-Transaction-Id: ssrf-redirect\r\n\r\n');
  expect(res.status).toBe(302);
  expect(res.head).toContain(`location: http://${C()}/stolen`);
  const [e] = await h.eventsFor('ssrf-redirect');
  expect(e).toMatchObject({ outcome: 'success', reason: { reasonCode: 302 } });
  expect(canaryConnections).toBe(0);
});

afterAll(() => {
  // Belt and braces: the canary saw nothing over the whole file.
  expect(canaryConnections).toBe(0);
  expect(canarySockets.size).toBe(0);
});
