import type { IncomingMessage } from 'node:http';
import { Transform, type Duplex, type TransformCallback } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Exchange } from '../audit/event-builder';
import { GatewayError, statusFor, upstreamError } from '../errors';
import { writeRawErrorReply } from '../http/raw-reply';
import { BodyCapture } from './body-capture';
import { writeErrorReply, type ClientResponse, type SocketResponse } from './client-response';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers';
import { admissionOf, admissionRefusalReason, type ProxyContext } from './proxy-context';
import type { Upstream } from './upstreams';

const CLIENT_ABORTED = 'The client closed the connection before the response was complete.';

/**
 * Passes the request body to undici unchanged while keeping a bounded prefix for the event, and counting it
 * against MAX_BODY_BYTES when no Content-Length announced its size. Piped (not iterated) so that when undici
 * gives up on the body, the client's request stays intact and can still be answered.
 */
class BodyTap extends Transform {
  private seen = 0;

  constructor(
    private readonly capture: BodyCapture | undefined,
    private readonly limit: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.limit > 0 && this.seen > this.limit) {
      callback(new GatewayError('ERR_PAYLOAD_TOO_LARGE', `The request body is larger than ${this.limit} bytes (MAX_BODY_BYTES).`));
      return;
    }
    this.capture?.add(chunk);
    callback(null, chunk);
  }
}

/** Longest wait for the rest of a request body the event needs (its name) after the upstream failed. */
const REQUEST_DRAIN_MS = 1000;

/** Whether a request has a body to forward (announced by Content-Length or Transfer-Encoding). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * One proxied call: forwards the request, streams the response back with backpressure, and records exactly one
 * event. The response's last byte is released only after the event is recorded, so a client that saw a
 * complete response can rely on its event being on disk.
 *
 * It implements undici's dispatch handler in the form undici's HTTP/1 client calls natively (onConnect,
 * onHeaders, onData, ...): the newer controller form is adapted by undici with a per-response header parse,
 * work the hot path does not need since headers are forwarded from the raw list.
 */
export class ProxyCall implements Dispatcher.DispatchHandler {
  private abortUpstream: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private settled = false;
  /** The gateway's own error answer is being prepared (its event recorded first). */
  private replying = false;
  /** The upstream's status line and headers, written to the client with the first bytes it may see. */
  private head: { statusCode: number; statusMessage: string | undefined; headers: string[] } | undefined;
  private headWritten = false;
  /** The newest body chunk, not yet forwarded (see onData). */
  private held: Buffer | undefined;
  private upgradeHead: Buffer | undefined;
  private clientGone = false;
  private readonly onDrain = (): void => this.resumeUpstream?.();

  constructor(
    private readonly ctx: ProxyContext,
    private readonly req: IncomingMessage,
    private readonly res: ClientResponse,
    private readonly x: Exchange,
    private readonly upstream: Upstream,
  ) {}

  /** Forward the call. `upgrade`: the protocol a client asked to switch to (kubectl exec, attach, port-forward). */
  start(upgrade?: { protocol: string; head: Buffer }): void {
    const { req, res, x } = this;
    this.upgradeHead = upgrade?.head;
    res.on('close', () => this.onClientClose());
    const refusal = admissionOf(this.ctx, x.method, x.region);
    if (refusal) {
      this.ctx.metrics.callsRefused.inc({ reason: admissionRefusalReason(refusal) });
      this.fail(refusal);
      req.resume();
      return;
    }
    x.forwarded = true;
    if (this.ctx.logger.isLevelEnabled('trace')) {
      this.ctx.logger.trace(
        { transactionId: x.transactionId, req: { method: x.method, path: x.target.path, headers: req.headers } },
        'proxying',
      );
    }
    let body: Dispatcher.DispatchOptions['body'] = null;
    if (hasBody(req)) {
      if (x.match.operation.recordsRequestBody && this.ctx.captureMaxBytes > 0) x.requestBody = new BodyCapture(this.ctx.captureMaxBytes);
      // A Content-Length over the limit was refused before this; an unannounced (chunked) size is counted.
      const unbounded = req.headers['content-length'] === undefined && this.ctx.maxBodyBytes > 0;
      body = x.requestBody || unbounded ? req.pipe(new BodyTap(x.requestBody, unbounded ? this.ctx.maxBodyBytes : 0)) : req;
    }
    const headers = upstreamRequestHeaders({
      rawHeaders: req.rawHeaders,
      host: this.upstream.host,
      transactionId: x.transactionId,
      clientAddress: x.clientAddress,
      proto: this.ctx.proto,
      contentLength: body === null ? undefined : req.headers['content-length'],
    });
    this.upstream.pool.dispatch(
      {
        path: this.upstream.basePath + x.target.path + x.target.search,
        method: x.method,
        headers,
        body,
        // Long-lived reads (watch, follow) may be silent for a long time between chunks.
        bodyTimeout: x.streaming ? 0 : undefined,
        upgrade: upgrade?.protocol ?? null,
      },
      this,
    );
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.clientGone) abort(new GatewayError('ERR_CLIENT_ABORTED', CLIENT_ABORTED));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusMessage?: string): boolean {
    // 1xx interim responses: the listener answers Expect: 100-continue itself; nothing to forward.
    if (statusCode < 200) return true;
    const { x } = this;
    if (this.clientGone) return false;
    this.resumeUpstream = resume;
    x.status = statusCode;
    x.responseContentType = headerValue(rawHeaders, 'content-type');
    if (this.ctx.captureMaxBytes > 0) x.responseBody = new BodyCapture(this.ctx.captureMaxBytes);
    this.head = { statusCode, statusMessage: statusMessage || undefined, headers: clientResponseHeaders(rawHeaders, x.transactionId) };
    if (!x.streaming) return true;
    // A watch or a followed log may last for hours: its event is recorded when it starts, and the client
    // gets the headers once it is.
    this.settled = true;
    void this.ctx.recordEvent(x).finally(() => {
      if (this.clientGone) return;
      this.writeHead();
      resume();
    });
    return false;
  }

  onData(chunk: Buffer): boolean {
    if (this.clientGone) return false;
    this.x.responseBody?.add(chunk);
    if (this.x.streaming) return this.writeOut(chunk);
    // The last chunk is held back until the event is recorded: with a Content-Length, the client holds a
    // complete response as soon as it has every byte, so only the missing last bytes make it wait.
    const previous = this.held;
    this.held = chunk;
    return previous ? this.writeOut(previous) : true;
  }

  onComplete(): void {
    if (this.clientGone) return;
    if (this.x.streaming) {
      this.res.end();
      return;
    }
    // Someone else already ended this call's story (a malformed body, a refusal): one event per call.
    if (this.settled) return;
    this.settled = true;
    void this.ctx.recordEvent(this.x).finally(() => {
      if (this.clientGone || this.res.destroyed) return;
      this.writeHead();
      if (this.held) this.res.end(this.held);
      else this.res.end();
      this.held = undefined;
    });
  }

  onError(err: Error): void {
    if (this.clientGone || this.settled) {
      // The gateway's own answer may be on its way (fail, abortMalformed): that answer ends the connection.
      if (!this.res.writableEnded && (this.clientGone || !this.replying)) this.res.destroy();
      return;
    }
    const error = upstreamError(err, this.upstream.host);
    if (this.x.status === undefined) {
      this.fail(error);
      return;
    }
    // The upstream answered, then cut its body short: whatever it did, the outcome is unknown.
    this.settled = true;
    this.x.incomplete = true;
    this.x.error = new GatewayError(
      'ERR_UPSTREAM_ABORTED',
      `Code Engine upstream ${this.upstream.host} answered ${this.x.status} but did not complete the response (${error.message})`,
      { cause: error },
    );
    this.held = undefined;
    void this.ctx.recordEvent(this.x).finally(() => {
      if (this.headWritten) this.res.destroy();
      else this.reply(this.x.error as GatewayError);
    });
  }

  private writeHead(): void {
    if (this.headWritten || !this.head) return;
    this.headWritten = true;
    this.res.writeHead(this.head.statusCode, this.head.statusMessage, this.head.headers);
  }

  private writeOut(chunk: Buffer): boolean {
    this.writeHead();
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.onDrain);
    return false;
  }

  /** A response the gateway itself produces (upstream unreachable, timeout, refused): event first, then the reply. */
  fail(error: GatewayError): void {
    if (this.settled) return;
    this.settled = true;
    this.replying = true;
    const { x } = this;
    x.error = error;
    x.status = statusFor(error.code);
    void this.readRestOfRequest()
      .then(() => this.ctx.recordEvent(x))
      .finally(() => this.reply(error));
  }

  /** True once the whole request (head and body) was read from the client. */
  get requestComplete(): boolean {
    return this.req.complete;
  }

  /** Runs `done` once this call's response is over (sent, cut, or never to be sent). */
  whenFinished(done: () => void): void {
    if (this.res.writableFinished || this.res.destroyed) done();
    else this.res.on('close', done);
  }

  /**
   * Node's parser found the rest of this request malformed (a bad chunk, a body that never ends in time): the
   * upstream request is abandoned, the event records the refusal, and the client gets it on the raw socket.
   */
  abortMalformed(error: GatewayError, socket: Duplex): void {
    if (this.settled) {
      this.abortUpstream?.(error);
      // Already being refused by the gateway itself: that answer is on its way (and closes the connection).
      if (!this.replying) socket.destroy();
      return;
    }
    // Settled first: aborting the upstream request reports back through onError, which must neither answer
    // too nor destroy the connection this answer is written on.
    this.settled = true;
    this.replying = true;
    this.abortUpstream?.(error);
    this.x.error = error;
    this.x.status = statusFor(error.code);
    void this.ctx.recordEvent(this.x).finally(() => {
      if (this.headWritten || socket.destroyed) {
        socket.destroy();
        return;
      }
      writeRawErrorReply(socket, error, this.x.transactionId);
    });
  }

  /** The gateway's own JSON answer, in Code Engine's error format, with the transaction id. */
  private reply(error: GatewayError): void {
    const { res, x } = this;
    if (res.headersSent || res.destroyed || this.clientGone) return;
    this.headWritten = true;
    writeErrorReply(res, error, x.transactionId);
  }

  /**
   * When the upstream failed before it read the whole request, the event still needs what the body says (a
   * create's name): read on while the capture can use it, for a bounded time.
   */
  private readRestOfRequest(): Promise<void> {
    const { req } = this;
    const capture = this.x.requestBody;
    if (!capture || req.readableEnded || req.destroyed || req.readableAborted || !capture.complete) return Promise.resolve();
    req.unpipe();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        req.off('data', onData).off('end', done).off('close', done).off('error', done).off('aborted', done);
        req.pause();
        resolve();
      };
      const onData = (chunk: Buffer): void => {
        capture.add(chunk);
        if (!capture.complete) done();
      };
      const timer = setTimeout(done, REQUEST_DRAIN_MS);
      req.on('data', onData).on('end', done).on('close', done).on('error', done).on('aborted', done);
      req.resume();
    });
  }

  /**
   * The upstream switched protocols: the event is recorded first, then the client gets the 101 and the two
   * sockets are joined until either side closes.
   */
  onUpgrade(statusCode: number, rawHeaders: Buffer[], upstreamSocket: Duplex): void {
    const res = this.res as SocketResponse;
    const { x } = this;
    if (this.clientGone) {
      upstreamSocket.destroy();
      return;
    }
    this.settled = true;
    x.status = statusCode;
    x.streaming = true;
    const headers: string[] = [];
    for (let i = 0; i < rawHeaders.length; i += 2)
      headers.push((rawHeaders[i] as Buffer).toString('latin1'), (rawHeaders[i + 1] as Buffer).toString('latin1'));
    headers.push('X-Transaction-Id', x.transactionId);
    upstreamSocket.pause();
    void this.ctx.recordEvent(x).finally(() => {
      const client = res.socket;
      if (client.destroyed) {
        upstreamSocket.destroy();
        return;
      }
      res.writeSwitchingProtocols(undefined, headers);
      if (this.upgradeHead && this.upgradeHead.length > 0) upstreamSocket.write(this.upgradeHead);
      const teardown = (): void => {
        client.destroy();
        upstreamSocket.destroy();
        this.ctx.tunnels.delete(client);
      };
      this.ctx.tunnels.add(client);
      // A side that finished sending is finished: close it too, so half-open sockets never linger.
      upstreamSocket
        .on('error', teardown)
        .on('close', teardown)
        .on('end', () => upstreamSocket.end());
      client
        .on('error', teardown)
        .on('close', teardown)
        .on('end', () => client.end());
      upstreamSocket.pipe(client);
      client.pipe(upstreamSocket);
      upstreamSocket.resume();
    });
  }

  private onClientClose(): void {
    if (this.res.writableFinished || this.clientGone) return;
    this.clientGone = true;
    this.res.off('drain', this.onDrain);
    const error = new GatewayError('ERR_CLIENT_ABORTED', CLIENT_ABORTED);
    this.abortUpstream?.(error);
    if (this.settled) return;
    this.settled = true;
    this.x.incomplete = true;
    this.x.error = error;
    void this.ctx.recordEvent(this.x);
  }
}

function headerValue(raw: Buffer[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i] as Buffer;
    if (key.length === name.length && key.toString('latin1').toLowerCase() === name) return (raw[i + 1] as Buffer).toString('latin1');
  }
  return undefined;
}
