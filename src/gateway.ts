import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createAdminApp } from './admin/admin-app';
import { defaultRegion, type GatewayConfig } from './config';
import { clientLimitOptions } from './http/server-options';
import { AuditCore, CLOSE_GRACE_MS, type AuditCoreOptions } from './core/audit-core';
import type { DeliveryHost } from './delivery/host';
import type { Metrics } from './metrics';
import { createProxyHandlers } from './proxy/proxy-handler';
import { Upstreams } from './proxy/upstreams';
import type { UnwrittenReport } from './record/recorder';
import type { SpoolRecorder } from './record/spool-recorder';
import { within } from './runtime/deadline';

export type GatewayOptions = Pick<AuditCoreOptions, 'logger' | 'stdout' | 'integrity'>;

export interface ListeningAddress {
  host: string;
  port: number;
  url: string;
}

function addressOf(server: Server, scheme: 'http' | 'https' = 'http'): ListeningAddress {
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return { host: a.address, port: a.port, url: `${scheme}://${host}:${a.port}` };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Stop accepting and wait for the calls in flight, until the deadline; then their connections are cut.
 * Keep-alive connections that turn idle meanwhile are closed as soon as they do, rather than when the
 * client's keep-alive timer runs out.
 */
function closeServer(server: Server, deadline: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    const sweeper = setInterval(() => server.closeIdleConnections(), 25);
    const cut = setTimeout(() => server.closeAllConnections(), Math.max(0, deadline - Date.now()));
    server.close(() => {
      clearInterval(sweeper);
      clearTimeout(cut);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/**
 * The proxy listener, plain or TLS, with the client limits: head size and count, slow clients (head and whole
 * request timeouts, checked every second instead of Node's 30 s), idle keep-alive, and a hard cap on sockets a
 * little above MAX_CONNECTIONS (calls between the two get an audited 503).
 */
function createProxyServer(config: GatewayConfig, onRequest: Parameters<typeof createHttpServer>[1]): Server {
  const { limits } = config;
  const options = clientLimitOptions(limits);
  const server: Server = config.tls
    ? createHttpsServer({ ...options, cert: config.tls.cert, key: config.tls.key }, onRequest)
    : createHttpServer(options, onRequest);
  // One over the limit so that a request with too many headers can be told apart (and refused) rather than cut.
  server.maxHeadersCount = limits.maxHeaders + 1;
  server.maxConnections = limits.maxConnections + 64;
  return server;
}

/** The whole gateway: proxy listener, admin listener, and the audit core (spool, delivery) they share. */
export class Gateway {
  private stopping: Promise<UnwrittenReport> | undefined;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly recorder: SpoolRecorder;
  readonly delivery: DeliveryHost;

  private constructor(
    readonly config: GatewayConfig,
    private readonly core: AuditCore,
    private readonly upstreams: Upstreams,
    private readonly proxyServer: Server,
    private readonly adminServer: Server,
  ) {
    this.logger = core.logger;
    this.metrics = core.metrics;
    this.recorder = core.recorder;
    this.delivery = core.delivery;
  }

  static async start(config: GatewayConfig, options: GatewayOptions = {}): Promise<Gateway> {
    const core = await AuditCore.open(config, options);
    const { logger } = core;
    const upstreams = new Upstreams(config);
    const handlers = createProxyHandlers({
      ctx: core.ctx,
      catalog: core.catalog,
      upstreams,
      identities: core.identities,
      defaultRegion: config.region,
      regions: new Set(config.regions.keys()),
      trustedProxies: config.trustedProxies,
      limits: config.limits,
    });
    const proxyServer = createProxyServer(config, handlers.onRequest);
    proxyServer.on('upgrade', handlers.onUpgrade);
    proxyServer.on('connect', handlers.onConnect);
    proxyServer.on('clientError', handlers.onClientError);
    // 'connection' is the TCP socket, for TLS listeners too (their 'secureConnection' is the same connection).
    proxyServer.on('connection', handlers.onConnection);
    const adminServer = createHttpServer(
      createAdminApp(logger, () => core.metricsText(), core.metricsContentType, config.adminToken, core.readinessChecks()),
    );
    try {
      await listen(proxyServer, config.port, config.host);
      await listen(adminServer, config.adminPort, config.adminHost);
    } catch (err) {
      const now = Date.now();
      await Promise.all([closeServer(proxyServer, now), closeServer(adminServer, now)]);
      await upstreams.close();
      await core.close(now);
      throw err;
    }
    const gateway = new Gateway(config, core, upstreams, proxyServer, adminServer);
    logger.info(
      {
        proxy: gateway.proxyAddress.url,
        admin: gateway.adminAddress.url,
        region: config.region,
        regions: [...config.regions.keys()],
        upstreams: defaultRegion(config).upstreams,
        sinks: config.sinks,
        spool: config.spool.dir,
        edition: config.actionEdition,
      },
      'ce-audit-gateway listening',
    );
    return gateway;
  }

  get proxyAddress(): ListeningAddress {
    return addressOf(this.proxyServer, this.config.tls ? 'https' : 'http');
  }

  get adminAddress(): ListeningAddress {
    return addressOf(this.adminServer);
  }

  /** Readiness problems (empty when ready), as GET /readyz reports them. */
  problems(): Promise<string[]> {
    return this.core.problems();
  }

  /**
   * Stop within DRAIN_TIMEOUT_MS + CLOSE_GRACE_MS whatever the disk does: stop accepting, let calls in flight finish
   * (their events spooled), deliver what can be delivered, and keep the rest in the spool for the next start. Events that
   * could not be written to the spool are logged, each, and reported (count, ids). Idempotent.
   */
  stop(): Promise<UnwrittenReport> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<UnwrittenReport> {
    const deadline = Date.now() + this.config.drainTimeoutMs;
    // Exec and attach sessions cannot be drained: they end with the gateway.
    for (const socket of this.core.ctx.tunnels) socket.destroy();
    await Promise.all([closeServer(this.proxyServer, deadline), closeServer(this.adminServer, Date.now())]);
    await within(this.upstreams.destroy(), deadline + CLOSE_GRACE_MS);
    return this.core.close(deadline);
  }
}
