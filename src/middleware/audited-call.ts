import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Exchange } from '../audit/event-builder';
import type { GatewayConfig } from '../config';
import { GatewayError, statusFor } from '../errors';
import { BodyCapture } from '../proxy/body-capture';
import { writeErrorReply, writeRawErrorReply } from '../proxy/client-response';
import { hasBody } from '../proxy/proxy-call';
import type { ProxyContext } from '../proxy/proxy-context';
import type { ActiveCall } from '../proxy/proxy-handler';

const CALL = Symbol('ce-audit-gateway: audited call');
const CLIENT_ABORTED = 'The client closed the connection before the response was complete.';

type WriteCallback = (err?: Error | null) => void;
type Chunk = string | Buffer | Uint8Array;
type Write = (chunk: Chunk, encoding?: BufferEncoding, callback?: WriteCallback) => boolean;
type End = (chunk?: Chunk, encoding?: BufferEncoding, callback?: () => void) => ServerResponse;
type Push = (chunk: unknown, encoding?: BufferEncoding) => boolean;

interface Tapped {
  [CALL]?: AuditedCall;
}

/** The audited call a request carries, once the audit middleware let it through (see createCodeEngineProxy). */
export function auditedCallOf(req: IncomingMessage): AuditedCall | undefined {
  return (req as Tapped)[CALL];
}

/**
 * The Code Engine endpoint a call through the audit middleware goes to: its region's API or Kubernetes upstream
 * (`https://api.<region>...` or `https://proxy.<region>...`, CE_API_URL / CE_KUBE_API_URL), as the catalog matched
 * it. For a proxy behind the middleware that routes itself, e.g. http-proxy-middleware's `router` option.
 */
export function upstreamUrlOf(req: IncomingMessage): string | undefined {
  const call = auditedCallOf(req);
  if (!call) return undefined;
  const target = call.hooks.config.regions.get(call.x.region)?.upstreams[call.x.match.upstream];
  return target ? `${target.origin}${target.basePath}` : undefined;
}

function chunkBytes(chunk: Chunk, encoding: BufferEncoding | undefined): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, encoding);
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

// One set of functions for every response, not closures per call: each finds its call through the object it is
// called on (the response, or the request for push).
function tappedWrite(
  this: ServerResponse & Tapped,
  chunk: Chunk,
  encoding?: BufferEncoding | WriteCallback,
  callback?: WriteCallback,
): boolean {
  return (this[CALL] as AuditedCall).write(chunk, encoding, callback);
}

function tappedEnd(
  this: ServerResponse & Tapped,
  chunk?: Chunk | (() => void),
  encoding?: BufferEncoding | (() => void),
  callback?: () => void,
): ServerResponse {
  return (this[CALL] as AuditedCall).end(chunk, encoding, callback);
}

function tappedPush(this: IncomingMessage & Tapped, chunk: unknown, encoding?: BufferEncoding): boolean {
  return (this[CALL] as AuditedCall).push(chunk, encoding);
}

function onResponseClose(this: ServerResponse & Tapped): void {
  (this[CALL] as AuditedCall).onClose();
}

interface Held {
  chunk: Chunk;
  encoding: BufferEncoding | undefined;
  callback: WriteCallback | undefined;
}

export interface AuditedCallHooks {
  /** The response closed (finished or cut): the call is no longer in flight. */
  onClosed(): void;
  /** The audit's configuration (its regions' upstreams). */
  readonly config: GatewayConfig;
}

/**
 * One call through the audit middleware, in front of whatever handler answers it (http-proxy-middleware, the app's
 * own code, createCodeEngineProxy). It sees the response through its `write` and `end` and the request body through
 * its `push`, keeping bounded prefixes of both, and records exactly one event: when the response ends (its last
 * chunk held back until the event is durable, as the listener does), or when the client goes away first. A watch
 * or a followed log is recorded when it starts, and its end waits for that event.
 *
 * createCodeEngineProxy takes the call over (handOver): the gateway's own ProxyCall then captures, holds back and
 * records exactly as the standalone listener does, and this call only counts it in flight.
 */
export class AuditedCall implements ActiveCall {
  /** The event's story is decided (it is being or was recorded). */
  private settled = false;
  private recording: Promise<void> | undefined;
  /** Still watching the response (false once handed over to the proxy). */
  private tapping = false;
  private ending = false;
  private released = false;
  private headSeen = false;
  /** The newest chunk the handler wrote, held until the next one (or until the event is durable, for the last). */
  private held: Held | undefined;
  /** The middleware answers itself (a body over MAX_BODY_BYTES): the handler's writes go nowhere. */
  private answered = false;
  private bodySeen = 0;
  private owner: ActiveCall | undefined;
  private prev: { write: Write; end: End; ownWrite: boolean; ownEnd: boolean } | undefined;
  private prevPush: { push: Push; own: boolean } | undefined;

  constructor(
    /** The audit's context (recorder, metrics, limits) this call is recorded with. */
    readonly ctx: ProxyContext,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly x: Exchange,
    readonly hooks: AuditedCallHooks,
  ) {
    (req as Tapped)[CALL] = this;
    (res as Tapped)[CALL] = this;
    res.once('close', onResponseClose);
  }

  get requestComplete(): boolean {
    return this.owner ? this.owner.requestComplete : this.req.complete;
  }

  /** Refused before the handler runs: the event first, then the gateway's JSON error. */
  refuse(error: GatewayError, closeConnection: boolean): void {
    const { req, res, x } = this;
    this.untap();
    this.settled = true;
    x.error = error;
    x.status = statusFor(error.code);
    // Nothing of this request is read: the connection is closed after the answer when it has a body coming.
    if (closeConnection) res.shouldKeepAlive = false;
    req.resume();
    void this.ctx.recordEvent(x).finally(() => {
      if (!res.headersSent && !res.destroyed) writeErrorReply(res, error, x.transactionId);
    });
  }

  /** Starts watching the response and the request body, before the handler runs. */
  tap(): void {
    const { req, res, x } = this;
    this.tapping = true;
    const write = res.write as unknown as Write;
    const end = res.end as unknown as End;
    this.prev = { write, end, ownWrite: Object.hasOwn(res, 'write'), ownEnd: Object.hasOwn(res, 'end') };
    res.write = tappedWrite as ServerResponse['write'];
    res.end = tappedEnd as ServerResponse['end'];
    const capture = x.match.operation.recordsRequestBody && this.ctx.captureMaxBytes > 0;
    // A Content-Length over the limit was refused before this; an unannounced (chunked) size is counted.
    const unbounded = req.headers['content-length'] === undefined && this.ctx.maxBodyBytes > 0;
    if ((capture || unbounded) && hasBody(req)) {
      if (capture) x.requestBody = new BodyCapture(this.ctx.captureMaxBytes);
      this.prevPush = { push: req.push as Push, own: Object.hasOwn(req, 'push') };
      req.push = tappedPush as IncomingMessage['push'];
    }
  }

  /**
   * createCodeEngineProxy answers this call with the gateway's own ProxyCall, which captures, holds back and records
   * like the listener: stop watching, and let parse errors of the rest of the request reach that call.
   */
  handOver(owner: ActiveCall): void {
    this.owner = owner;
    this.untap();
  }

  private untap(): void {
    if (!this.tapping) return;
    this.tapping = false;
    const { req, res } = this;
    const prev = this.prev;
    if (prev) {
      restore(res, 'write', tappedWrite, prev.write as unknown as ServerResponse['write'], prev.ownWrite);
      restore(res, 'end', tappedEnd, prev.end as unknown as ServerResponse['end'], prev.ownEnd);
    }
    const prevPush = this.prevPush;
    if (prevPush) restore(req, 'push', tappedPush, prevPush.push, prevPush.own);
    const held = this.held;
    this.held = undefined;
    if (held && prev) prev.write.call(res, held.chunk, held.encoding, held.callback);
  }

  write(chunk: Chunk, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    const prev = this.prev as NonNullable<AuditedCall['prev']>;
    if (!this.tapping || this.ending) return prev.write.call(this.res, chunk, encoding, callback);
    if (this.answered) {
      if (callback) process.nextTick(callback);
      return true;
    }
    this.head();
    this.captureResponse(chunk, encoding);
    if (this.x.streaming) return prev.write.call(this.res, chunk, encoding, callback);
    // The last chunk is held back until the event is durable: with a Content-Length, the client holds a complete
    // response as soon as it has every byte, so only the missing last bytes make it wait.
    const previous = this.held;
    this.held = { chunk, encoding, callback };
    return previous ? prev.write.call(this.res, previous.chunk, previous.encoding, previous.callback) : true;
  }

  end(chunkOrCallback?: Chunk | (() => void), encodingOrCallback?: BufferEncoding | (() => void), cb?: () => void): ServerResponse {
    let chunk: Chunk | undefined;
    let encoding: BufferEncoding | undefined;
    let callback = cb;
    if (typeof chunkOrCallback === 'function') callback = chunkOrCallback;
    else {
      chunk = chunkOrCallback;
      if (typeof encodingOrCallback === 'function') callback = encodingOrCallback;
      else encoding = encodingOrCallback;
    }
    const { res } = this;
    const prev = this.prev as NonNullable<AuditedCall['prev']>;
    if (!this.tapping || this.released) return prev.end.call(res, chunk, encoding, callback);
    if (this.ending) {
      // Ended twice: the response still ends once, when its event is durable.
      if (callback) res.once('finish', callback);
      return res;
    }
    if (this.answered) {
      if (callback) process.nextTick(callback);
      return res;
    }
    this.ending = true;
    this.head();
    if (chunk !== undefined && chunk !== null) this.captureResponse(chunk, encoding);
    const last = chunk;
    const lastEncoding = encoding;
    const release = (): void => {
      this.released = true;
      const held = this.held;
      this.held = undefined;
      if (res.destroyed) return;
      if (held) {
        if (last === undefined || last === null) {
          if (held.callback) prev.write.call(res, held.chunk, held.encoding, held.callback);
          else {
            prev.end.call(res, held.chunk, held.encoding, callback);
            return;
          }
        } else prev.write.call(res, held.chunk, held.encoding, held.callback);
      }
      prev.end.call(res, last, lastEncoding, callback);
    };
    if (this.recording) void this.recording.finally(release);
    else this.settle().finally(release);
    return res;
  }

  /** Request body chunks as Node's parser delivers them: counted, captured, and cut at MAX_BODY_BYTES. */
  push(chunk: unknown, encoding?: BufferEncoding): boolean {
    const prevPush = (this.prevPush as NonNullable<AuditedCall['prevPush']>).push;
    if (this.tapping && chunk !== null && chunk !== undefined) {
      const bytes = chunkBytes(chunk as Chunk, encoding);
      this.bodySeen += bytes.length;
      const limit = this.ctx.maxBodyBytes;
      if (limit > 0 && this.bodySeen > limit && this.req.headers['content-length'] === undefined) {
        this.bodyTooLarge(new GatewayError('ERR_PAYLOAD_TOO_LARGE', `The request body is larger than ${limit} bytes (MAX_BODY_BYTES).`));
        // Never passed on: the handler (and the upstream behind it) does not get more than the limit.
        return false;
      }
      this.x.requestBody?.add(bytes);
    }
    return prevPush.call(this.req, chunk, encoding);
  }

  /** Before the head goes out: the transaction id is the gateway's, whatever the handler copied from upstream. */
  private head(): void {
    if (this.headSeen) return;
    this.headSeen = true;
    const { res, x } = this;
    if (!res.headersSent) res.setHeader('X-Transaction-Id', x.transactionId);
    // A watch or a followed log may last for hours: its event is recorded when it starts.
    if (x.streaming) this.recording = this.settle();
  }

  private captureResponse(chunk: Chunk, encoding: BufferEncoding | undefined): void {
    const { x } = this;
    if (this.ctx.captureMaxBytes <= 0 || x.streaming) return;
    x.responseBody ??= new BodyCapture(this.ctx.captureMaxBytes);
    const capture = x.responseBody;
    if (capture.total >= capture.limit) capture.total += typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.byteLength;
    else capture.add(chunkBytes(chunk, encoding));
  }

  /** Records the event once, with what the response said (status, content type), and resolves when it is durable. */
  private settle(): Promise<void> {
    if (this.settled) return this.recording ?? Promise.resolve();
    this.settled = true;
    const { res, x } = this;
    x.status = res.statusCode;
    const type = res.getHeader('content-type');
    x.responseContentType = typeof type === 'string' ? type : undefined;
    this.recording = this.ctx.recordEvent(x);
    return this.recording;
  }

  /** The body outgrew MAX_BODY_BYTES: the event says so, the client gets a 413, and the request is cut. */
  private bodyTooLarge(error: GatewayError): void {
    if (this.settled) return;
    this.settled = true;
    const { req, res, x } = this;
    this.ctx.metrics.callsRefused.inc({ reason: 'payload_too_large' });
    x.error = error;
    x.status = statusFor(error.code);
    this.answered = !res.headersSent;
    const prev = this.prev as NonNullable<AuditedCall['prev']>;
    this.recording = this.ctx.recordEvent(x).finally(() => {
      if (!this.answered || res.destroyed) {
        res.destroy();
        return;
      }
      res.shouldKeepAlive = false;
      writeErrorReply({ writeHead: (...a) => res.writeHead(...a), end: (body) => prev.end.call(res, body) }, error, x.transactionId);
      // The rest of the body is never read: the connection goes with the answer, and the handler's upstream
      // request with it (never completed, so never executed).
      res.once('finish', () => req.socket.destroy());
    });
  }

  onClose(): void {
    this.hooks.onClosed();
    if (!this.tapping) return;
    this.tapping = false;
    this.held = undefined;
    if (this.settled) return;
    this.settled = true;
    const { res, x } = this;
    x.incomplete = true;
    x.error = new GatewayError('ERR_CLIENT_ABORTED', CLIENT_ABORTED);
    if (res.headersSent) x.status = res.statusCode;
    void this.ctx.recordEvent(x);
  }

  whenFinished(done: () => void): void {
    if (this.owner) {
      this.owner.whenFinished(done);
      return;
    }
    if (this.res.writableFinished || this.res.destroyed) done();
    else this.res.once('close', done);
  }

  /**
   * Node's parser found the rest of this request malformed (a bad chunk, a body that never ends in time), seen
   * through attach(server): the call's one event records the refusal and the client gets it on the raw socket.
   */
  abortMalformed(error: GatewayError, socket: Duplex): void {
    if (this.owner) {
      this.owner.abortMalformed(error, socket);
      return;
    }
    if (this.settled) {
      socket.destroy();
      return;
    }
    this.settled = true;
    this.answered = true;
    const { res, x } = this;
    x.error = error;
    x.status = statusFor(error.code);
    void this.ctx.recordEvent(x).finally(() => {
      if (res.headersSent || socket.destroyed) socket.destroy();
      else writeRawErrorReply(socket, error, x.transactionId);
    });
  }
}

/** Puts back what a tapped method replaced, unless someone wrapped it again since (then ours passes through). */
function restore<T extends object, K extends keyof T>(target: T, key: K, mine: unknown, previous: T[K], wasOwn: boolean): void {
  if (target[key] !== mine) return;
  if (wasOwn) target[key] = previous;
  else Reflect.deleteProperty(target, key);
}
