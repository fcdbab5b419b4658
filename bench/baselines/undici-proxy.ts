/**
 * Baseline: a bare pass-through proxy on undici, with no auditing: the floor for any Node proxy. node:http in
 * front, one undici Pool behind (keep-alive, same pool settings as the gateway), request and response bodies
 * streamed with backpressure, hop-by-hop headers removed (RFC 9110 7.6.1), Host set to the upstream's.
 * It uses undici's dispatch handler directly (raw header lists, no per-response header object), the same
 * mechanism the gateway uses, so the difference between the two is the auditing.
 * Run: node build/bench/baselines/undici-proxy.js --target http://127.0.0.1:PORT [--port N]
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool, type Dispatcher } from 'undici';
// The same hop-by-hop rules as the gateway, so the two differ only by the auditing.
import { connectionListed, HOP_BY_HOP } from '../../src/proxy/headers';
import { argValue as arg } from '../common';

const target = new URL(arg('target') ?? 'http://127.0.0.1:1');
const pool = new Pool(target.origin, { connections: 256, pipelining: 1, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000 });

function requestHeaders(req: IncomingMessage): string[] {
  const raw = req.rawHeaders;
  const listed = connectionListed(raw);
  const out: string[] = ['host', target.host];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (lower === 'host' || HOP_BY_HOP.has(lower) || listed?.has(lower)) continue;
    out.push(name, raw[i + 1] as string);
  }
  return out;
}

function responseHeaders(raw: Buffer[]): string[] {
  const out: string[] = [];
  const names: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    names.push((raw[i] as Buffer).toString('latin1'), (raw[i + 1] as Buffer).toString('latin1'));
  }
  const listed = connectionListed(names);
  for (let i = 0; i < names.length; i += 2) {
    const lower = (names[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed?.has(lower)) continue;
    out.push(names[i] as string, names[i + 1] as string);
  }
  return out;
}

class PassThroughCall implements Dispatcher.DispatchHandler {
  private abort: ((err?: Error) => void) | undefined;
  private resume: (() => void) | undefined;
  private headWritten = false;
  private readonly onDrain = (): void => this.resume?.();

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    res.on('close', () => {
      if (!res.writableFinished) this.abort?.(new Error('client closed the connection'));
    });
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusMessage?: string): boolean {
    if (statusCode < 200) return true;
    this.resume = resume;
    this.headWritten = true;
    this.res.writeHead(statusCode, statusMessage || undefined, responseHeaders(rawHeaders));
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.onDrain);
    return false;
  }

  onComplete(): void {
    this.res.end();
  }

  onError(): void {
    if (this.headWritten || this.res.destroyed) {
      this.res.destroy();
      return;
    }
    this.req.resume();
    const body = '{"error":"bad gateway"}';
    this.res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  }
}

const server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 60_000, requestTimeout: 0 }, (req, res) => {
  const length = req.headers['content-length'];
  const hasBody = (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
  pool.dispatch(
    { origin: target.origin, path: req.url ?? '/', method: req.method ?? 'GET', headers: requestHeaders(req), body: hasBody ? req : null },
    new PassThroughCall(req, res),
  );
});

server.listen(Number(arg('port') ?? '0'), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ msg: 'undici proxy listening', url: `http://127.0.0.1:${port}` })}\n`);
});
const stop = (): void => {
  server.close(() => void pool.close().then(() => process.exit(0)));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
