import type { Duplex, Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { ReadinessCheck } from '../admin/admin-app';
import { EventBuilder } from '../audit/event-builder';
import { loadRedactor } from '../audit/redact';
import type { GatewayConfig } from '../config';
import { InThreadDelivery, ThreadDelivery, type DeliveryHost } from '../delivery/host';
import { IdentityResolver } from '../identity/initiator';
import { TokenVerifier } from '../identity/token-verifier';
import { createLogger } from '../log';
import { Metrics } from '../metrics';
import { createRecordEvent, type ProxyContext } from '../proxy/proxy-context';
import type { UnwrittenReport } from '../record/recorder';
import { SpoolRecorder } from '../record/spool-recorder';
import { loadCatalog, type RouteCatalog } from '../routing/catalog';
import { LATE, within } from '../runtime/deadline';
import { checkWritable } from '../storage/storage-problem';
import { claimSpoolDir } from './spool-claims';

export interface AuditCoreOptions {
  /** The gateway's logger (pino). Default: JSON lines on stdout at LOG_LEVEL. */
  logger?: Logger;
  /** Where the stdout sink writes (tests). */
  stdout?: Writable;
  /** Node's process metrics in the registry (see Metrics). */
  processMetrics?: boolean;
  /** Benchmarks only: `false` records events without the audit chain and checkpoints, to measure what they cost. */
  integrity?: false;
}

/** After DRAIN_TIMEOUT_MS, what stopping may still take to close files (a failing disk gets no longer). */
export const CLOSE_GRACE_MS = 1000;

const WAIT_STEP_MS = 10;

/**
 * What every front end audits with, built once per gateway or middleware from its configuration: the route
 * catalog, the event builder with the redaction rules, the recorder and its per-region spools, delivery to the
 * sinks, identities, and the metrics. The standalone listener and the Express middleware each drive one of these:
 * there is no second copy of the audit.
 */
export class AuditCore {
  private closing: Promise<UnwrittenReport> | undefined;

  private constructor(
    readonly config: GatewayConfig,
    readonly logger: Logger,
    readonly metrics: Metrics,
    readonly catalog: RouteCatalog,
    readonly identities: IdentityResolver,
    readonly recorder: SpoolRecorder,
    readonly delivery: DeliveryHost,
    /** Shared by every call (the listener's and the middleware's), with the proxy's protocol. */
    readonly ctx: ProxyContext,
    /** Events being built and written right now (counted by ctx.recordEvent). */
    private readonly recording: { count: number },
    private readonly releaseSpool: () => void,
  ) {}

  static async open(config: GatewayConfig, options: AuditCoreOptions = {}): Promise<AuditCore> {
    const logger = options.logger ?? createLogger(config.logLevel);
    const catalog = loadCatalog(config.actionEdition);
    const redactor = loadRedactor();
    const metrics = new Metrics({ processMetrics: options.processMetrics ?? true });
    const releaseSpool = claimSpoolDir(config.spool.dir);
    let recorder: SpoolRecorder;
    try {
      // A full, read-only, forbidden or failing disk stops here, naming the directory and the fix (the command exits 2).
      await checkWritable('SPOOL_DIR', config.spool.dir);
      if (config.sinks.includes('file')) await checkWritable('AT_FILE_DIR', config.fileDir);
      recorder = await SpoolRecorder.open({
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
    } catch (err) {
      releaseSpool();
      throw err;
    }
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
    const verifier = config.jwks
      ? new TokenVerifier({
          jwksUrl: config.jwks.url,
          issuer: config.jwks.issuer,
          onError: (err) =>
            logger.warn({ err: { message: err.message } }, 'IAM signing keys could not be fetched; tokens stay unverified until they can'),
        })
      : undefined;
    void verifier?.refresh();
    const recording = { count: 0 };
    const recordEvent = createRecordEvent(builder, recorder, logger, {
      inFlight: recording,
      onRecorded: (x, seconds) => {
        metrics.recordDurationIn(x.region).observe(seconds);
        const status = x.status === undefined ? 'none' : `${Math.floor(x.status / 100)}xx`;
        metrics.upstreamDurationOf(x.region, x.match.upstream, status).observe((Date.now() - x.startedAt) / 1000);
      },
      onRecordFailed: (x) => metrics.recordFailures.inc({ region: x.region }),
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
      recordEvent,
    };
    return new AuditCore(
      config,
      logger,
      metrics,
      catalog,
      new IdentityResolver(verifier),
      recorder,
      delivery,
      ctx,
      recording,
      releaseSpool,
    );
  }

  /** Readiness: the spool is writable and not full, and every sink delivers (or has not failed for long). */
  readinessChecks(): ReadinessCheck[] {
    const { recorder, delivery, config } = this;
    return [
      { name: 'spool', problems: () => recorder.writeProblems() },
      {
        name: 'spool-capacity',
        problems: () =>
          recorder.isFull()
            ? [`the spool holds ${recorder.undeliveredBytes()} bytes of undelivered events (SPOOL_MAX_BYTES ${config.spool.maxBytes})`]
            : [],
      },
      { name: 'delivery', problems: () => delivery.problems() },
    ];
  }

  /** Every readiness problem; empty when ready. */
  async problems(): Promise<string[]> {
    const found = await Promise.all(this.readinessChecks().map((c) => c.problems()));
    return found.flat();
  }

  /** Prometheus text of this instance: calls and spool (this thread), and delivery (wherever it runs). */
  async metricsText(): Promise<string> {
    return `${await this.metrics.registry.metrics()}\n${await this.delivery.metricsText()}`;
  }

  get metricsContentType(): string {
    return this.metrics.registry.contentType;
  }

  /** Events being built and written right now. */
  get eventsInFlight(): number {
    return this.recording.count;
  }

  /** Waits (until the deadline at most) for the events being recorded; true when none is left. */
  async recorded(deadline: number): Promise<boolean> {
    while (this.recording.count > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, WAIT_STEP_MS));
    return this.recording.count === 0;
  }

  /**
   * After the front end stopped taking calls: waits for the events being recorded, appends each region's shutdown
   * checkpoint, delivers what can be delivered before the deadline, keeps the rest in the spool for the next start, and
   * closes the spool, never later than `deadline` + CLOSE_GRACE_MS whatever the disk does. Events that could not be
   * written to the spool are logged, each, and reported (count, ids). Idempotent.
   */
  close(deadline: number): Promise<UnwrittenReport> {
    this.closing ??= this.shutdown(deadline);
    return this.closing;
  }

  private async shutdown(deadline: number): Promise<UnwrittenReport> {
    const closeBy = deadline + CLOSE_GRACE_MS;
    // Exec and attach sessions cannot be drained: they end with the gateway.
    for (const socket of this.ctx.tunnels) socket.destroy();
    try {
      await this.recorded(deadline);
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
      return await this.recorder.close(closeBy);
    } finally {
      this.releaseSpool();
    }
  }
}
