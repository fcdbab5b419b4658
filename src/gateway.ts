import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { createAdminApp } from './admin/admin-app';
import { EventBuilder } from './audit/event-builder';
import { loadRedactor } from './audit/redact';
import type { GatewayConfig } from './config';
import { IdentityResolver } from './identity/initiator';
import { createLogger } from './log';
import { createProxyHandlers } from './proxy/proxy-handler';
import { createRecordEvent, type ProxyContext } from './proxy/proxy-context';
import { Upstreams } from './proxy/upstreams';
import { FileJournal } from './record/file-journal';
import type { EventRecorder } from './record/recorder';
import { loadCatalog } from './routing/catalog';

export interface GatewayOptions {
  logger?: Logger;
  /** Replaces the configured journal (tests). */
  recorder?: EventRecorder;
}

export interface ListeningAddress {
  host: string;
  port: number;
  url: string;
}

function addressOf(server: Server): ListeningAddress {
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return { host: a.address, port: a.port, url: `http://${host}:${a.port}` };
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
 * Stop accepting and wait for the calls in flight. Keep-alive connections that turn idle meanwhile are closed
 * as soon as they do, rather than when the client's keep-alive timer runs out.
 */
function closeServer(server: Server, drainTimeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    const sweeper = setInterval(() => server.closeIdleConnections(), 25);
    // Calls still running after the drain timeout (watches, followed logs) are cut.
    const deadline = setTimeout(() => server.closeAllConnections(), drainTimeoutMs);
    server.close(() => {
      clearInterval(sweeper);
      clearTimeout(deadline);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** The whole gateway: proxy listener, admin listener, and what they share. */
export class Gateway {
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly config: GatewayConfig,
    readonly logger: Logger,
    readonly recorder: EventRecorder,
    private readonly upstreams: Upstreams,
    private readonly proxyServer: Server,
    private readonly adminServer: Server,
    private readonly tunnels: Set<Duplex>,
  ) {}

  static async start(config: GatewayConfig, options: GatewayOptions = {}): Promise<Gateway> {
    const logger = options.logger ?? createLogger(config.logLevel);
    const catalog = loadCatalog(config.actionEdition);
    const redactor = loadRedactor();
    const recorder =
      options.recorder ??
      new FileJournal({
        dir: config.fileDir,
        fsync: config.fileFsync,
        onError: (err, attempt) =>
          logger.error(
            { err: { message: err.message, code: (err as NodeJS.ErrnoException).code }, attempt },
            'journal write failed; retrying',
          ),
        onRecovered: () => logger.warn('journal writes recovered'),
      });
    const builder = new EventBuilder({
      catalog,
      redactor,
      edition: config.actionEdition,
      accountId: config.accountId,
      namespaceProjects: config.namespaceProjects,
      responseData: config.responseData,
    });
    const tunnels = new Set<Duplex>();
    const ctx: ProxyContext = {
      tunnels,
      recorder,
      logger,
      captureMaxBytes: config.captureMaxBytes,
      proto: 'http',
      recordEvent: createRecordEvent(builder, recorder, logger),
    };
    const upstreams = new Upstreams(config);
    const handlers = createProxyHandlers({
      ctx,
      catalog,
      upstreams,
      identities: new IdentityResolver(),
      region: config.region,
      trustedProxies: config.trustedProxies,
    });
    const proxyServer = createServer({ keepAliveTimeout: 65_000, headersTimeout: 60_000 }, handlers.onRequest);
    proxyServer.on('upgrade', handlers.onUpgrade);
    const adminServer = createServer(
      createAdminApp(logger, [{ name: 'journal', problem: () => (recorder.isHealthy() ? undefined : 'audit events cannot be written') }]),
    );
    await listen(proxyServer, config.port, config.host);
    try {
      await listen(adminServer, config.adminPort, config.adminHost);
    } catch (err) {
      await closeServer(proxyServer, 0);
      throw err;
    }
    const gateway = new Gateway(config, logger, recorder, upstreams, proxyServer, adminServer, tunnels);
    logger.info(
      {
        proxy: gateway.proxyAddress.url,
        admin: gateway.adminAddress.url,
        region: config.region,
        upstreams: config.upstreams,
        edition: config.actionEdition,
      },
      'ce-audit-gateway listening',
    );
    return gateway;
  }

  get proxyAddress(): ListeningAddress {
    return addressOf(this.proxyServer);
  }

  get adminAddress(): ListeningAddress {
    return addressOf(this.adminServer);
  }

  /** Stop accepting, let in-flight calls finish (their events recorded), then release everything. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    // Exec and attach sessions cannot be drained: they end with the gateway.
    for (const socket of this.tunnels) socket.destroy();
    await Promise.all([closeServer(this.proxyServer, this.config.drainTimeoutMs), closeServer(this.adminServer, 0)]);
    await this.upstreams.close();
    await this.recorder.close();
  }
}
