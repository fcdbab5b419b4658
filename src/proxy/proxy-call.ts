import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Exchange } from '../audit/event-builder';
import { GatewayError, httpErrorFor, statusFor, upstreamError } from '../errors';
import { BodyCapture } from './body-capture';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers';
import type { ProxyContext } from './proxy-context';
import type { Upstream } from './upstreams';

const CLIENT_ABORTED = 'The client closed the connection before the response was complete.';

/** Streams the request body to undici while keeping a bounded prefix for the event. */
async function* tapped(req: IncomingMessage, capture: BodyCapture): AsyncGenerator<Buffer> {
  for await (const chunk of req) {
    capture.add(chunk as Buffer);
    yield chunk as Buffer;
  }
}

function hasBody(req: IncomingMessage): boolean {
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
  private clientGone = false;
  private readonly onDrain = (): void => this.resumeUpstream?.();

  constructor(
    private readonly ctx: ProxyContext,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly x: Exchange,
    private readonly upstream: Upstream,
  ) {}

  start(): void {
    const { req, res, x } = this;
    res.on('close', () => this.onClientClose());
    if (!this.ctx.recorder.isHealthy()) {
      this.fail(new GatewayError('ERR_RECORD_FAILED', 'The audit journal cannot be written, so the call was refused rather than left unaudited. Retry later.'));
      req.resume();
      return;
    }
    let body: Dispatcher.DispatchOptions['body'] = null;
    if (hasBody(req)) {
      if (x.match.operation.recordsRequestBody && this.ctx.captureMaxBytes > 0) {
        x.requestBody = new BodyCapture(this.ctx.captureMaxBytes);
        // undici documents AsyncIterable bodies (docs/api/Dispatcher.md); its .d.ts lists only stream types.
        body = tapped(req, x.requestBody) as unknown as Dispatcher.DispatchOptions['body'];
      } else {
        body = req;
      }
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
    const { x, res } = this;
    if (this.clientGone) return false;
    this.resumeUpstream = resume;
    x.status = statusCode;
    x.responseContentType = headerValue(rawHeaders, 'content-type');
    if (this.ctx.captureMaxBytes > 0) x.responseBody = new BodyCapture(this.ctx.captureMaxBytes);
    res.writeHead(statusCode, statusMessage || undefined, clientResponseHeaders(rawHeaders, x.transactionId));
    if (x.streaming) {
      // A watch or a followed log may last for hours: its event is recorded when it starts.
      this.settled = true;
      void this.ctx.recordEvent(x);
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.clientGone) return false;
    this.x.responseBody?.add(chunk);
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.onDrain);
    return false;
  }

  onComplete(): void {
    if (this.clientGone) return;
    if (this.x.streaming) {
      this.res.end();
      return;
    }
    this.settled = true;
    void this.ctx.recordEvent(this.x).finally(() => this.res.end());
  }

  onError(err: Error): void {
    if (this.clientGone || this.settled) {
      if (!this.res.writableEnded) this.res.destroy();
      return;
    }
    const error = upstreamError(err, this.upstream.host);
    if (this.res.headersSent) {
      // The upstream cut the body short: the client cannot get a complete response either.
      this.settled = true;
      this.x.incomplete = true;
      this.x.error = error;
      void this.ctx.recordEvent(this.x).finally(() => this.res.destroy());
      return;
    }
    this.fail(error);
  }

  /** A response the gateway itself produces (upstream unreachable, timeout, refused): event first, then the reply. */
  fail(error: GatewayError): void {
    if (this.settled) return;
    this.settled = true;
    const { x, res } = this;
    const reply = httpErrorFor(error, x.transactionId);
    x.error = error;
    x.status = statusFor(error.code);
    void this.ctx.recordEvent(x).finally(() => {
      if (res.headersSent || res.destroyed) return;
      res.writeHead(reply.status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(reply.body),
        'x-transaction-id': x.transactionId,
      });
      res.end(reply.body);
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
