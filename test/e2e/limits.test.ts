/**
 * Every limit on what clients may send refuses with a clear status and an audited event, instead of hanging
 * or crashing: head size and header count, body size (announced or chunked), slow heads and slow bodies,
 * idle keep-alive, concurrent connections. Through the standalone gateway, and through the audit middleware at
 * the root of an Express app whose server was made with the audit's serverOptions and attached.
 */
import { connect, type Socket } from 'node:net';
import { request as httpRequest } from 'node:http';
import { FRONT_ENDS, startFrontEnd } from '../support/express-harness';
import type { AuditHarness } from '../support/harness';
import { until } from '../support/load';
import { rawRequest } from '../support/raw-http';

describe.each(FRONT_ENDS)('%s', (frontEnd) => {
  let h: AuditHarness;
  let port: number;
  beforeAll(async () => {
    h = await startFrontEnd(
      frontEnd,
      {
        MAX_HEADER_BYTES: '4096',
        MAX_HEADERS: '40',
        MAX_BODY_BYTES: '100000',
        HEADERS_TIMEOUT_MS: '500',
        REQUEST_TIMEOUT_MS: '1500',
        KEEPALIVE_TIMEOUT_MS: '400',
        MAX_CONNECTIONS: '5',
      },
      '',
    );
    port = Number(new URL(h.url).port);
  });
  afterAll(() => h.close());

  function open(): Promise<Socket> {
    return new Promise((resolve) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
    });
  }

  function readAll(socket: Socket, ms: number): Promise<{ text: string; closed: boolean }> {
    return new Promise((resolve) => {
      let text = '';
      let closed = false;
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      const timer = setTimeout(() => resolve({ text, closed }), ms);
      socket.on('close', () => {
        closed = true;
        clearTimeout(timer);
        resolve({ text, closed });
      });
    });
  }

  test('a head over MAX_HEADER_BYTES: 431, audited', async () => {
    const res = await rawRequest(port, `GET /v2/projects/limit-head HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`);
    expect(res.status).toBe(431);
    expect(JSON.parse(res.body).errors[0].message).toMatch(/larger than 4096 bytes \(MAX_HEADER_BYTES\)/);
    const events = (await h.events()).filter((e) => e.requestData.path === '/v2/projects/limit-head');
    expect(events.map((e) => e.reason.reasonCode)).toEqual([431]);
  });

  test('more than MAX_HEADERS headers: 431, audited, not forwarded', async () => {
    const before = h.upstream.requests.length;
    const headers = Array.from({ length: 45 }, (_, i) => `X-H${i}: v`).join('\r\n');
    const res = await rawRequest(port, `GET /v2/projects HTTP/1.1\r\nHost: x\r\nX-Transaction-Id: lim-count\r\n${headers}\r\n\r\n`);
    expect(res.status).toBe(431);
    expect(h.upstream.requests.length).toBe(before);
    expect((await h.eventsFor('lim-count'))[0]?.reason.reasonCode).toBe(431);
  });

  test('an announced body over MAX_BODY_BYTES: 413 before anything is forwarded', async () => {
    const before = h.upstream.requests.length;
    const res = await rawRequest(
      port,
      'POST /v2/projects HTTP/1.1\r\nHost: x\r\nX-Transaction-Id: lim-cl\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n{"name":"big"',
    );
    expect(res.status).toBe(413);
    expect(h.upstream.requests.length).toBe(before);
    const [e] = await h.eventsFor('lim-cl');
    expect(e).toMatchObject({
      action: 'codeengine.project.create',
      outcome: 'failure',
      reason: { reasonCode: 413, reasonType: 'Payload Too Large' },
    });
  });

  test('a chunked body that grows past MAX_BODY_BYTES: 413, audited', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${h.url}/v2/_upload`,
        { method: 'POST', headers: { 'x-transaction-id': 'lim-chunked', 'transfer-encoding': 'chunked' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      let sent = 0;
      const pump = (): void => {
        while (sent < 300_000) {
          sent += 16_384;
          if (!req.write(Buffer.alloc(16_384, 1))) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    }).catch(() => 0);
    expect([413, 0]).toContain(status);
    const [e] = await h.eventsFor('lim-chunked');
    expect(e?.reason.reasonCode).toBe(413);
    expect(e?.reason.reasonForFailure).toMatch(/MAX_BODY_BYTES/);
  });

  test('a head sent too slowly: 408, and the connection is closed', async () => {
    const socket = await open();
    socket.write('GET /v2/projects HTTP/1.1\r\nHost: x\r\n');
    const started = Date.now();
    const { text, closed } = await readAll(socket, 4000);
    expect(closed).toBe(true);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  test('a body sent too slowly: the call ends with an event, no hang', async () => {
    const socket = await open();
    socket.write(
      'POST /v2/projects HTTP/1.1\r\nHost: x\r\nX-Transaction-Id: lim-slow-body\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":',
    );
    const { text, closed } = await readAll(socket, 5000);
    expect(closed).toBe(true);
    // Answered on the raw socket once the call under way is abandoned: the status line says what happened.
    expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(text).toMatch(/\r\nX-Transaction-Id: lim-slow-body\r\n/);
    expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)).errors[0].code).toBe('request_timeout');
    const [e] = await h.eventsFor('lim-slow-body');
    expect(e).toMatchObject({ outcome: 'failure', reason: { reasonCode: 408, reasonType: 'Request Timeout' } });
  });

  test('an idle keep-alive connection is closed after KEEPALIVE_TIMEOUT_MS', async () => {
    const socket = await open();
    socket.write('GET /v2/function_runtimes HTTP/1.1\r\nHost: x\r\n\r\n');
    const started = Date.now();
    const { text, closed } = await readAll(socket, 3000);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(closed).toBe(true);
    expect(Date.now() - started).toBeLessThan(2500);
  });

  test('beyond MAX_CONNECTIONS: calls get an audited 503 and their connection is closed', async () => {
    const held = await Promise.all(Array.from({ length: 6 }, () => open()));
    try {
      expect(await until(() => true, 50)).toBe(true);
      const res = await rawRequest(port, 'GET /v2/function_runtimes HTTP/1.1\r\nHost: x\r\nX-Transaction-Id: lim-conn\r\n\r\n');
      expect(res.status).toBe(503);
      expect(JSON.parse(res.body).errors[0]).toMatchObject({ code: 'too_many_connections' });
      expect((await h.eventsFor('lim-conn'))[0]?.reason.reasonCode).toBe(503);
    } finally {
      for (const s of held) s.destroy();
    }
    expect(
      await until(async () => (await rawRequest(port, 'GET /v2/function_runtimes HTTP/1.1\r\nHost: x\r\n\r\n')).status === 200, 3000),
    ).toBe(true);
  });
});
