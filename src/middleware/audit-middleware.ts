import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { configFrom, type GatewaySettings } from '../config/input';
import type { GatewayConfig } from '../config';
import { AuditCore } from '../core/audit-core';
import { GatewayError } from '../errors';
import { clientLimitOptions } from '../http/server-options';
import { transactionIdFor } from '../http/transaction-id';
import { writeErrorReply } from '../proxy/client-response';
import { admissionOf, admissionRefusalReason } from '../proxy/proxy-context';
import { createProxyHandlers, type RequestScope } from '../proxy/proxy-handler';
import { AuditedCall, auditedCallOf } from './audited-call';
import { upstreamsOf, type CodeEngineProxy, type RequestHandlerLike } from './code-engine-proxy';
import { checkMountPath, localUrlOf, mountScope, type MountedRequest } from './scope';

export interface AuditMiddlewareOptions {
  /** The audit's own logger (pino). Default: JSON lines on stdout at LOG_LEVEL. */
  logger?: Logger;
  /**
   * Node's process metrics (CPU, memory, event loop, GC) in metrics(), prefixed ce_audit_. Default false: the app
   * owns its process and usually reports them itself.
   */
  processMetrics?: boolean;
}

export interface AttachOptions {
  /** The path the middleware is mounted under in the app: '/' (default) or e.g. '/ce'. */
  path?: string;
  /** The proxy that answers the upgrades under that path (kubectl exec, attach, port-forward). */
  proxy?: CodeEngineProxy;
}

/** createAuditMiddleware's handler. */
export interface AuditMiddleware extends RequestHandlerLike {
  readonly config: GatewayConfig;
  /**
   * Covers what a middleware cannot see from inside the app, at the app's HTTP server: requests Node's parser
   * refuses (audited when under the mount path), upgrades (with `proxy`: kubectl exec, attach, port-forward, audited
   * and tunnelled), and the gateway's client limits (head and request timeouts, keep-alive, header count, and
   * MAX_CONNECTIONS, over which calls get an audited 503). Returns a function that detaches it again.
   */
  attach(server: HttpServer | HttpsServer, options?: AttachOptions): () => void;
  /**
   * Options for the app's own http.createServer(options, app) (or https): the head size limit (MAX_HEADER_BYTES)
   * and how often Node checks the head and request timeouts can only be given when a server is created.
   */
  readonly serverOptions: ReturnType<typeof clientLimitOptions>;
  /** Readiness problems (the spool cannot be written or is full, a sink fails for too long); empty when ready. */
  problems(): Promise<string[]>;
  /** This audit's Prometheus metrics (text exposition format; see metricsContentType). */
  metrics(): Promise<string>;
  readonly metricsContentType: string;
  /**
   * Stops auditing: new calls are refused (503), calls in flight finish (their events recorded) within
   * DRAIN_TIMEOUT_MS, delivery sends what it can, and the spool is closed (undelivered events stay in it for the
   * next start). Idempotent.
   */
  close(): Promise<void>;
}

const CLOSED = 'The audit middleware is closed, so the call was refused rather than left unaudited.';
const WAIT_STEP_MS = 10;

/**
 * The gateway's audit as Express (or Connect) middleware: `app.use(path, audit, proxy)`. Every request that reaches
 * it is a Code Engine call: it gets its transaction id (X-Transaction-Id back to the client, X-Correlation-Id on
 * req.headers for the proxy to send upstream), is matched against the catalog below the mount path, refused before
 * the next handler when the gateway would refuse it, and recorded as exactly one event, spool first, by the same
 * audit core as the standalone gateway (route match, event builder, redaction, recorder, delivery, metrics).
 */
export async function createAuditMiddleware(
  config: GatewayConfig | GatewaySettings,
  options: AuditMiddlewareOptions = {},
): Promise<AuditMiddleware> {
  const cfg = configFrom(config);
  const core = await AuditCore.open(cfg, { logger: options.logger, processMetrics: options.processMetrics ?? false });
  let attached: { path: string; scope: RequestScope; proxy: CodeEngineProxy | undefined } | undefined;
  const handlers = createProxyHandlers({
    ctx: core.ctx,
    catalog: core.catalog,
    // Only upgrades are forwarded from here (attach with a proxy); every other call goes through the app.
    upstreams: {
      get: (region, name) => {
        const upstreams = upstreamsOf(attached?.proxy);
        if (!upstreams) throw new Error('no proxy attached for upgrades');
        return upstreams.get(region, name);
      },
    },
    identities: core.identities,
    defaultRegion: cfg.region,
    regions: new Set(cfg.regions.keys()),
    trustedProxies: cfg.trustedProxies,
    limits: cfg.limits,
    scope: { localUrl: (url) => (attached ? attached.scope.localUrl(url) : url) },
  });
  const detachers = new Set<() => void>();
  let inFlight = 0;
  /** Set when close() starts: new calls are refused. */
  let closing: Promise<void> | undefined;
  /** Set once the spool is closing: a refusal can no longer be recorded. */
  let spoolClosed = false;
  let bypassWarned = false;
  const hooks = {
    onClosed: () => inFlight--,
    config: cfg,
    onBypassed: () => {
      if (bypassWarned) return;
      bypassWarned = true;
      core.logger.warn(
        'a response ended without passing through the audit middleware (a handler behind it replaced the response prototype): its event was recorded after the response instead of before its last byte; mount the audit next to that handler',
      );
    },
  };

  const handler = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void => {
    // Already audited on its way here (a second audit mounted on an outer path): one event per call.
    if (auditedCallOf(req)) {
      next();
      return;
    }
    if (spoolClosed) {
      writeErrorReply(res, new GatewayError('ERR_AUDIT_CLOSED', CLOSED), transactionIdFor(req.headers));
      return;
    }
    const routed = handlers.route(localUrlOf(req as MountedRequest));
    const { x, refused } = handlers.intake(req, routed);
    res.setHeader('X-Transaction-Id', x.transactionId);
    // So that a proxy behind (http-proxy-middleware, createCodeEngineProxy) sends it upstream.
    req.headers['x-correlation-id'] = x.transactionId;
    inFlight++;
    const call = new AuditedCall(core.ctx, req, res, x, hooks);
    // Only attach(server) hears of parse errors in the rest of a request (see onClientError).
    if (attached) handlers.track(req, res, call);
    if (refused) {
      core.metrics.callsRefused.inc({ reason: refused.code.slice(4).toLowerCase() });
      call.refuse(refused, true);
      return;
    }
    const admission = closing ? new GatewayError('ERR_AUDIT_CLOSED', CLOSED) : admissionOf(core.ctx, x.method, x.region);
    if (admission) {
      core.metrics.callsRefused.inc({ reason: closing ? 'closed' : admissionRefusalReason(admission) });
      call.refuse(admission, false);
      return;
    }
    // What the handler forwards is what the event names: the normalised path, without a region prefix.
    req.url = x.target.path + x.target.search;
    call.tap();
    next();
  };

  const attach = (server: HttpServer | HttpsServer, attachOptions: AttachOptions = {}): (() => void) => {
    const path = checkMountPath(attachOptions.path ?? '/');
    const proxy = attachOptions.proxy;
    if (proxy !== undefined && !upstreamsOf(proxy)) {
      throw new GatewayError('ERR_CONFIG_INVALID', 'Invalid attach option: proxy must be a handler made by createCodeEngineProxy.');
    }
    if (attached && (attached.path !== path || (proxy && attached.proxy && proxy !== attached.proxy))) {
      throw new GatewayError(
        'ERR_CONFIG_INVALID',
        `Invalid attach option: this audit middleware is attached under ${attached.path} already; every server it is attached to must use the same path and proxy.`,
      );
    }
    attached = { path, scope: mountScope(path), proxy: proxy ?? attached?.proxy };
    const { limits } = cfg;
    server.headersTimeout = limits.headersTimeoutMs;
    server.requestTimeout = limits.requestTimeoutMs;
    server.keepAliveTimeout = limits.keepAliveTimeoutMs;
    // One over the limit, so that a request with too many headers can be told apart (and refused) rather than cut.
    server.maxHeadersCount = limits.maxHeaders + 1;
    server.maxConnections = limits.maxConnections + 64;
    const scope = attached.scope;
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      const url = scope.localUrl(req.url ?? '/');
      if (url === undefined) {
        // Another route's upgrade: its own listener answers it; with none, nobody would.
        if (server.listenerCount('upgrade') === 1) socket.destroy();
        return;
      }
      req.url = url;
      handlers.onUpgrade(req, socket, head);
    };
    const onConnection = (socket: Socket): void => handlers.onConnection(socket);
    server.on('connection', onConnection);
    server.on('clientError', handlers.onClientError);
    if (proxy) server.on('upgrade', onUpgrade);
    const detach = (): void => {
      server.off('connection', onConnection);
      server.off('clientError', handlers.onClientError);
      server.off('upgrade', onUpgrade);
      detachers.delete(detach);
    };
    detachers.add(detach);
    return detach;
  };

  const close = (): Promise<void> => {
    closing ??= (async () => {
      const deadline = Date.now() + cfg.drainTimeoutMs;
      while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, WAIT_STEP_MS));
      spoolClosed = true;
      for (const detach of [...detachers]) detach();
      await core.close(deadline);
    })();
    return closing;
  };

  return Object.assign(handler, {
    config: cfg,
    serverOptions: clientLimitOptions(cfg.limits),
    attach,
    problems: () => core.problems(),
    metrics: () => core.metricsText(),
    metricsContentType: core.metricsContentType,
    close,
  });
}
