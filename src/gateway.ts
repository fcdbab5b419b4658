import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createAdminApp } from './admin/admin-app';
import { EventBuilder } from './audit/event-builder';
import { loadRedactor } from './audit/redact';
import { defaultRegion, type GatewayConfig } from './config';
import { InThreadDelivery, ThreadDelivery, type DeliveryHost } from './delivery/host';
import { IdentityResolver } from './identity/initiator';
import { TokenVerifier } from './identity/token-verifier';
import { createLogger } from './log';
import { Metrics } from './metrics';
import { createProxyHandlers } from './proxy/proxy-handler';
import { createRecordEvent, type ProxyContext } from './proxy/proxy-context';
import { Upstreams } from './proxy/upstreams';
import type { UnwrittenReport } from './record/recorder';
import { SpoolRecorder } from './record/spool-recorder';
import { loadCatalog } from './routing/catalog';
import { checkWritable } from './storage/storage-problem';

export interface GatewayOptions {
  logger?: Logger;
  /** Where the stdout sink writes (tests). */
  stdout?: Writable;
  /** Benchmarks only: `false` records events without the audit chain and checkpoints, to measure what they cost. */
  integrity?: false;
}

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
  const options = {
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
    connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(limits.headersTimeoutMs / 2))),
  };
  const server: Server = config.tls
    ? createHttpsServer({ ...options, cert: config.tls.cert, key: config.tls.key }, onRequest)
    : createHttpServer(options, onRequest);
  // One over the limit so that a request with too many headers can be told apart (and refused) rather than cut.
  server.maxHeadersCount = limits.maxHeaders + 1;
  server.maxConnections = limits.maxConnections + 64;
  return server;
}

/** After DRAIN_TIMEOUT_MS, what stopping may still take to close files (a failing disk gets no longer). */
const CLOSE_GRACE_MS = 1000;

const LATE = Symbol('late');

/** The promise's value, or LATE once `deadline` (epoch ms) passes first. */
async function within<T>(promise: Promise<T>, deadline: number): Promise<T | typeof LATE> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof LATE>((resolve) => {
    timer = setTimeout(() => resolve(LATE), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The whole gateway: proxy listener, admin listener, spool, delivery, and what they share. */
export class Gateway {
  private stopping: Promise<UnwrittenReport> | undefined;

  private constructor(
    readonly config: GatewayConfig,
    readonly logger: Logger,
    readonly metrics: Metrics,
    readonly recorder: SpoolRecorder,
    readonly delivery: DeliveryHost,
    private readonly upstreams: Upstreams,
    private readonly proxyServer: Server,
    private readonly adminServer: Server,
    private readonly tunnels: Set<Duplex>,
  ) {}

  static async start(config: GatewayConfig, options: GatewayOptions = {}): Promise<Gateway> {
    const logger = options.logger ?? createLogger(config.logLevel);
    const catalog = loadCatalog(config.actionEdition);
    const redactor = loadRedactor();
    const metrics = new Metrics();
    // A full, read-only, forbidden or failing disk stops the gateway here, naming the directory and the fix (exit 2).
    await checkWritable('SPOOL_DIR', config.spool.dir);
    if (config.sinks.includes('file')) await checkWritable('AT_FILE_DIR', config.fileDir);
    const recorder = await SpoolRecorder.open({
      dir: config.spool.dir,
      regions: [...config.regions.keys()],
      consumers: config.sinks,
      fsync: config.spool.fsync,
      segmentBytes: config.spool.segmentBytes,
      maxBytes: config.spool.maxBytes,
      fullPolicy: config.spool.fullPolicy,
      holdMs: config.spool.holdMs,
      logger,
      metrics,
      integrity:
        options.integrity === false
          ? false
          : {
              checkpointIntervalMs: config.integrity.checkpointIntervalMs,
              signingKey: config.integrity.signingKey,
              accountId: config.accountId,
            },
    });
    metrics.spoolBytesOf = () => [...recorder.regions].map(([region, spool]) => [region, spool.bytes]);
    const delivery: DeliveryHost =
      config.deliveryThread === 'worker'
        ? new ThreadDelivery(config, recorder, logger)
        : new InThreadDelivery(config, recorder, logger, options.stdout);

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
      metrics,
      captureMaxBytes: config.captureMaxBytes,
      maxBodyBytes: config.limits.maxBodyBytes,
      proto: config.tls ? 'https' : 'http',
      admit: (method, region) => recorder.admit(method, region),
      recordEvent: createRecordEvent(builder, recorder, logger, {
        onRecorded: (x, seconds) => {
          metrics.recordDurationIn(x.region).observe(seconds);
          const status = x.status === undefined ? 'none' : `${Math.floor(x.status / 100)}xx`;
          metrics.upstreamDurationOf(x.region, x.match.upstream, status).observe((Date.now() - x.startedAt) / 1000);
        },
        onRecordFailed: (x) => metrics.recordFailures.inc({ region: x.region }),
      }),
    };
    const upstreams = new Upstreams(config);
    const verifier = config.jwks
      ? new TokenVerifier({
          jwksUrl: config.jwks.url,
          issuer: config.jwks.issuer,
          onError: (err) =>
            logger.warn({ err: { message: err.message } }, 'IAM signing keys could not be fetched; tokens stay unverified until they can'),
        })
      : undefined;
    void verifier?.refresh();
    const handlers = createProxyHandlers({
      ctx,
      catalog,
      upstreams,
      identities: new IdentityResolver(verifier),
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
      createAdminApp(
        logger,
        async () => `${await metrics.registry.metrics()}\n${await delivery.metricsText()}`,
        metrics.registry.contentType,
        config.adminToken,
        [
          { name: 'spool', problems: () => recorder.writeProblems() },
          {
            name: 'spool-capacity',
            problems: () =>
              recorder.isFull()
                ? [`the spool holds ${recorder.undeliveredBytes()} bytes of undelivered events (SPOOL_MAX_BYTES ${config.spool.maxBytes})`]
                : [],
          },
          { name: 'delivery', problems: () => delivery.problems() },
        ],
      ),
    );
    try {
      await listen(proxyServer, config.port, config.host);
      await listen(adminServer, config.adminPort, config.adminHost);
    } catch (err) {
      const now = Date.now();
      await Promise.all([closeServer(proxyServer, now), closeServer(adminServer, now)]);
      await delivery.stop();
      await upstreams.close();
      await recorder.close();
      throw err;
    }
    const gateway = new Gateway(config, logger, metrics, recorder, delivery, upstreams, proxyServer, adminServer, tunnels);
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
    const closeBy = deadline + CLOSE_GRACE_MS;
    // Exec and attach sessions cannot be drained: they end with the gateway.
    for (const socket of this.tunnels) socket.destroy();
    await Promise.all([closeServer(this.proxyServer, deadline), closeServer(this.adminServer, Date.now())]);
    // The shutdown checkpoint, covering every event, goes out with the rest (waited for until the deadline only: a
    // failing disk holds it, and the recorder's close() settles it).
    const sealed = this.recorder
      .seal()
      .catch((err: unknown) =>
        this.logger.error({ err: { message: (err as Error).message } }, 'shutdown: the audit checkpoint could not be written'),
      );
    await within(sealed, deadline);
    const caughtUp = await within(this.delivery.flush(deadline), deadline);
    if (caughtUp !== true) this.logger.warn('shutdown: undelivered events stay in the spool and are delivered after the next start');
    // A journal on a disk that hangs must not hold the exit: what it did not take is still in the spool.
    if ((await within(this.delivery.stop(), closeBy)) === LATE) this.logger.warn('shutdown: delivery did not stop in time');
    await within(this.upstreams.destroy(), closeBy);
    return this.recorder.close(closeBy);
  }
}
