import { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Exchange } from '../audit/event-builder';
import type { GatewayConfig } from '../config';
import { GatewayError, statusFor } from '../errors';
import { BodyCapture } from '../proxy/body-capture';
import { writeRawErrorReply } from '../http/raw-reply';
import { writeErrorReply } from '../proxy/client-response';
import { hasBody } from '../proxy/proxy-call';
import type { ProxyContext } from '../proxy/proxy-context';
import type { ActiveCall } from '../proxy/proxy-handler';

const CLIENT_ABORTED = 'The client closed the connection before the response was complete.';

type WriteCallback = (err?: Error | null) => void;
type Chunk = string | Buffer | Uint8Array;
type Write = (chunk: Chunk, encoding?: BufferEncoding, callback?: WriteCallback) => boolean;
type End = (chunk?: Chunk, encoding?: BufferEncoding, callback?: () => void) => ServerResponse;
type Push = (chunk: unknown, encoding?: BufferEncoding) => boolean;

/**
 * The audited call of each request in flight. Not a property on the request or the response: Express has already
 * swapped their prototypes, and adding a property to such an object makes V8 rebuild it as a dictionary (about 8 us
 * each, measured). Not a WeakMap either: entries for objects that die young make every scavenge walk the map's
 * ephemeron table (about 3 us per call in a loop that creates and drops them, against 0.2 us for a Map). A Map,
 * from which each call removes itself when its response closes (always emitted, finished or cut); the response
 * finds its request through `res.req`.
 */
const calls = new Map<IncomingMessage, AuditedCall>();

/** The audited call a request carries, once the audit middleware let it through (see createCodeEngineProxy). */
export function auditedCallOf(req: IncomingMessage): AuditedCall | undefined {
  return calls.get(req);
}

/**
 * The Code Engine endpoint a call through the audit middleware goes to: its region's API or Kubernetes upstream
 * (`https://api.<region>...` or `https://proxy.<region>...`, CE_API_URL / CE_KUBE_API_URL), as the catalog matched
 * it. For a proxy behind the middleware that routes itself, e.g. http-proxy-middleware's `router` option.
 */
export function upstreamUrlOf(req: IncomingMessage): string | undefined {
  const call = calls.get(req);
  if (!call) return undefined;
  const target = call.hooks.config.regions.get(call.x.region)?.upstreams[call.x.match.upstream];
  return target ? `${target.origin}${target.basePath}` : undefined;
}

function chunkBytes(chunk: Chunk, encoding: BufferEncoding | undefined): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, encoding);
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** What a tapped method calls through to. */
interface Through {
  write: Write;
  end: End;
}

/** The methods a prototype had before it was tapped (own, non-enumerable). */
const ORIGINAL = Symbol('ce-audit-gateway: methods before the tap');

// One set of functions for every response and request: each finds its call by the object it is called on, and
// passes through when there is none or the call stopped watching.
function tapped(through: () => Through): { write: Write; end: End } {
  return {
    write: function (this: ServerResponse, chunk: Chunk, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
      const call = calls.get(this.req);
      if (call !== undefined && call.watching) return call.write(chunk, encoding, callback);
      return (through().write as (this: ServerResponse, ...a: unknown[]) => boolean).call(this, chunk, encoding, callback);
    } as Write,
    end: function (this: ServerResponse, chunk?: Chunk, encoding?: BufferEncoding | (() => void), callback?: () => void): ServerResponse {
      const call = calls.get(this.req);
      if (call !== undefined && call.watching) return call.end(chunk, encoding, callback);
      return (through().end as (this: ServerResponse, ...a: unknown[]) => ServerResponse).call(this, chunk, encoding, callback);
    } as End,
  };
}

/**
 * Taps write and end on a response's prototype: Express gives each app's responses a prototype of their own
 * (app.response), patched once. Node's ServerResponse.prototype, shared by every server in the process, is never
 * patched: those responses (outside Express) are tapped one by one.
 */
function tapPrototype(proto: object): Through {
  const done = (proto as { [ORIGINAL]?: Through })[ORIGINAL];
  if (done) return done;
  const original: Through = { write: (proto as Through).write, end: (proto as Through).end };
  const fns = tapped(() => original);
  Object.defineProperty(proto, ORIGINAL, { value: original });
  Object.defineProperty(proto, 'write', { value: fns.write, writable: true, configurable: true });
  Object.defineProperty(proto, 'end', { value: fns.end, writable: true, configurable: true });
  return original;
}

const PUSH_ORIGINAL = Symbol('ce-audit-gateway: push before the tap');

function tappedPush(through: () => Push): Push {
  return function (this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding): boolean {
    const call = calls.get(this);
    if (call !== undefined && call.watching) return call.push(chunk, encoding, through());
    return through().call(this, chunk, encoding);
  };
}

function tapPushPrototype(proto: object): Push {
  const done = (proto as { [PUSH_ORIGINAL]?: Push })[PUSH_ORIGINAL];
  if (done) return done;
  const original = (proto as { push: Push }).push;
  Object.defineProperty(proto, PUSH_ORIGINAL, { value: original });
  Object.defineProperty(proto, 'push', { value: tappedPush(() => original), writable: true, configurable: true });
  return original;
}

function onResponseClose(this: ServerResponse): void {
  const call = calls.get(this.req);
  if (call === undefined || call.res !== this) return;
  calls.delete(this.req);
  call.onClose();
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
  /** A response ended without passing through the tap (its event could not hold its last byte back). */
  onBypassed(): void;
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
  /** What the tapped write and end call through to. */
  private through: Through | undefined;
  /** The request body is counted (MAX_BODY_BYTES) and captured as it arrives. */
  private counting = false;
  /** Methods tapped on this response or request itself (outside Express), put back on handOver. */
  private own: Array<{ target: object; key: 'write' | 'end' | 'push'; mine: unknown; previous: unknown; wasOwn: boolean }> | undefined;

  constructor(
    /** The audit's context (recorder, metrics, limits) this call is recorded with. */
    readonly ctx: ProxyContext,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly x: Exchange,
    readonly hooks: AuditedCallHooks,
  ) {
    calls.set(req, this);
    res.on('close', onResponseClose);
  }

  /** Still watching the response (false once refused, handed over to the proxy, or closed). */
  get watching(): boolean {
    return this.tapping;
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
    const proto: object | null = Object.getPrototypeOf(res);
    if (proto !== null && proto !== ServerResponse.prototype && !Object.hasOwn(res, 'write') && !Object.hasOwn(res, 'end')) {
      this.through = tapPrototype(proto);
    } else {
      const through: Through = { write: res.write as unknown as Write, end: res.end as unknown as End };
      const fns = tapped(() => through);
      this.through = through;
      this.own = [
        { target: res, key: 'write', mine: fns.write, previous: through.write, wasOwn: Object.hasOwn(res, 'write') },
        { target: res, key: 'end', mine: fns.end, previous: through.end, wasOwn: Object.hasOwn(res, 'end') },
      ];
      res.write = fns.write as unknown as ServerResponse['write'];
      res.end = fns.end as unknown as ServerResponse['end'];
    }
    const capture = x.match.operation.recordsRequestBody && this.ctx.captureMaxBytes > 0;
    // A Content-Length over the limit was refused before this; an unannounced (chunked) size is counted.
    const unbounded = req.headers['content-length'] === undefined && this.ctx.maxBodyBytes > 0;
    if ((capture || unbounded) && hasBody(req)) {
      if (capture) x.requestBody = new BodyCapture(this.ctx.captureMaxBytes);
      const reqProto: object | null = Object.getPrototypeOf(req);
      this.counting = true;
      if (reqProto !== null && reqProto !== IncomingMessage.prototype && !Object.hasOwn(req, 'push')) {
        tapPushPrototype(reqProto);
      } else {
        const previous = req.push as Push;
        const mine = tappedPush(() => previous);
        (this.own ??= []).push({ target: req, key: 'push', mine, previous, wasOwn: Object.hasOwn(req, 'push') });
        req.push = mine as IncomingMessage['push'];
      }
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
    for (const t of this.own ?? []) restore(t.target, t.key, t.mine, t.previous, t.wasOwn);
    this.own = undefined;
    const held = this.held;
    this.held = undefined;
    if (held && this.through) this.through.write.call(this.res, held.chunk, held.encoding, held.callback);
  }

  write(chunk: Chunk, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    const prev = this.through as Through;
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
    const prev = this.through as Through;
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
    // recordEvent never rejects.
    void (this.recording ?? this.settle()).then(release);
    return res;
  }

  /** Request body chunks as Node's parser delivers them: counted, captured, and cut at MAX_BODY_BYTES. */
  push(chunk: unknown, encoding: BufferEncoding | undefined, through: Push): boolean {
    if (this.counting && chunk !== null && chunk !== undefined) {
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
    return through.call(this.req, chunk, encoding);
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
    const prev = this.through as Through;
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
    const { res, x } = this;
    if (res.writableFinished) {
      // The response ended without passing through this call: something behind the middleware replaced its
      // prototype with one that does not inherit the tapped one (Express's own sub-apps do inherit it). Recorded
      // now, after the fact.
      this.hooks.onBypassed();
      void this.settle();
      return;
    }
    this.settled = true;
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
    else this.res.on('close', done);
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
function restore(target: object, key: string, mine: unknown, previous: unknown, wasOwn: boolean): void {
  const t = target as Record<string, unknown>;
  if (t[key] !== mine) return;
  if (wasOwn) t[key] = previous;
  else Reflect.deleteProperty(t, key);
}
