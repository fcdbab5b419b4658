import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { configFrom, type GatewaySettings } from '../config/input';
import type { GatewayConfig } from '../config';
import { GatewayError } from '../errors';
import { transactionIdFor } from '../http/transaction-id';
import { writeErrorReply } from '../proxy/client-response';
import { ProxyCall } from '../proxy/proxy-call';
import type { ProxyContext } from '../proxy/proxy-context';
import { Upstreams } from '../proxy/upstreams';
import { auditedCallOf } from './audited-call';

/** The `next` of a Connect/Express handler. */
export type NextFunction = (err?: unknown) => void;

/** A Connect/Express request handler, typed on Node's own request and response (Express's extend them). */
export type RequestHandlerLike = (req: IncomingMessage, res: ServerResponse, next: NextFunction) => void;

const UPSTREAMS = Symbol('ce-audit-gateway: proxy upstreams');

/** createCodeEngineProxy's handler. */
export interface CodeEngineProxy extends RequestHandlerLike {
  readonly config: GatewayConfig;
  /** Closes the upstream connection pools: waits for the calls in flight, until DRAIN_TIMEOUT_MS, then cuts them. */
  close(): Promise<void>;
  /** @internal The pools, for the audit middleware's attach (upgrades). */
  readonly [UPSTREAMS]: Upstreams;
}

/** The pools of a proxy made by createCodeEngineProxy; undefined for anything else. */
export function upstreamsOf(proxy: unknown): Upstreams | undefined {
  return typeof proxy === 'function' ? (proxy as Partial<CodeEngineProxy>)[UPSTREAMS] : undefined;
}

const NOT_AUDITED =
  'This call did not pass through the audit middleware, so it was not forwarded: mount createAuditMiddleware in front of createCodeEngineProxy, on the same path (app.use(path, audit, proxy)).';

/**
 * The gateway's own proxy as an Express handler: the call the audit middleware let through is forwarded to its
 * region's upstream (api or kube, from the route match) by the same ProxyCall as the standalone listener, on
 * keep-alive undici pools, streaming both ways with backpressure, with the same header rules and error bodies.
 * ProxyCall then holds back the response's last chunk until the call's event is durable and records it, so the
 * middleware only counts the call; nothing is parsed or matched twice.
 *
 * It forwards only calls that passed the audit middleware: anything else is refused (500 audit_middleware_missing)
 * and never reaches Code Engine.
 */
export function createCodeEngineProxy(config: GatewayConfig | GatewaySettings): CodeEngineProxy {
  const cfg = configFrom(config);
  const upstreams = new Upstreams(cfg);
  /** The audit's context with the protocol of the app's server (X-Forwarded-Proto), per audit middleware. */
  const contexts = new WeakMap<ProxyContext, ProxyContext>();
  const contextFor = (ctx: ProxyContext, req: IncomingMessage): ProxyContext => {
    const proto = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
    if (ctx.proto === proto) return ctx;
    let other = contexts.get(ctx);
    if (!other) {
      other = { ...ctx, proto };
      contexts.set(ctx, other);
    }
    return other;
  };
  let closing: Promise<void> | undefined;

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const audited = auditedCallOf(req);
    if (!audited) {
      writeErrorReply(res, new GatewayError('ERR_NOT_AUDITED', NOT_AUDITED), transactionIdFor(req.headers));
      return;
    }
    const { x } = audited;
    if (!cfg.regions.has(x.region)) {
      audited.refuse(
        new GatewayError(
          'ERR_CONFIG_INVALID',
          `This proxy does not front region ${x.region}: give createCodeEngineProxy the configuration of its audit middleware (CE_REGIONS).`,
        ),
        true,
      );
      return;
    }
    const call = new ProxyCall(contextFor(audited.ctx, req), req, res, x, upstreams.get(x.region, x.match.upstream));
    audited.handOver(call);
    call.start();
  };
  const proxy = Object.assign(handler, {
    config: cfg,
    close: (): Promise<void> => {
      closing ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const cut = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, cfg.drainTimeoutMs);
        });
        await Promise.race([upstreams.close(), cut]);
        clearTimeout(timer);
        await upstreams.destroy();
      })();
      return closing;
    },
    [UPSTREAMS]: upstreams,
  });
  return proxy;
}
