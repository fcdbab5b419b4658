import type { Logger } from 'pino';
import type { GatewayConfig, SinkName } from '../config';
import type { DeliveryMetrics } from '../metrics';
import type { Region } from '../types';
import type { DeadLetters } from './dead-letter';
import type { PaceSource } from './pacer';
import type { Sink } from './sinks/sink';
import { DeliveryWorker, type SpoolReader } from './worker';

/** Builds the sink instance of one region (each region has its own endpoint and credentials). */
export type SinkFactory = (region: Region, name: SinkName) => Sink;

export interface DeliveryOptions {
  config: GatewayConfig;
  /** Each region's spool, as delivery reads it (the spool itself, or its view from another thread). */
  spools: ReadonlyMap<Region, SpoolReader>;
  createSink: SinkFactory;
  deadLetters: DeadLetters;
  metrics: DeliveryMetrics;
  logger: Logger;
  scrub: (text: string) => string;
  /** Paces the workers draining a backlog while calls are being served on this thread; none: always full speed. */
  pacer?: PaceSource;
}

/**
 * Delivery: one worker per region and sink, each with its own cursor in its region's spool, so a slow or
 * failing sink never holds back another, and an event only ever goes to its own region's endpoints.
 */
export class Delivery {
  readonly workers: DeliveryWorker[] = [];
  private readonly sinks: Sink[] = [];

  constructor(private readonly o: DeliveryOptions) {
    const { config } = o;
    for (const [region, spool] of o.spools) {
      for (const name of config.sinks) {
        const sink = o.createSink(region, name);
        this.sinks.push(sink);
        this.workers.push(
          new DeliveryWorker({
            region,
            sink,
            spool,
            maxEvents: config.batch.maxEvents,
            maxBytes: config.batch.maxBytes,
            maxWaitMs: config.batch.maxWaitMs,
            retryBaseMs: config.retry.baseMs,
            retryMaxMs: config.retry.maxMs,
            sendTimeoutMs: config.sinkTimeoutMs,
            deadLetters: o.deadLetters,
            metrics: o.metrics,
            logger: o.logger,
            scrub: o.scrub,
            pacer: o.pacer,
          }),
        );
      }
    }
    this.registerGauges();
  }

  start(): void {
    for (const w of this.workers) w.start();
  }

  /** Readiness problems: sinks failing for longer than SINK_UNHEALTHY_AFTER_MS. */
  problems(now = Date.now()): string[] {
    return this.workers
      .filter((w) => w.failingFor(now) > this.o.config.sinkUnhealthyAfterMs)
      .map(
        (w) => `sink ${w.name} has been failing for ${Math.round(w.failingFor(now) / 1000)} s: ${w.lastFailureReason ?? 'unknown reason'}`,
      );
  }

  /** Deliver what can be delivered before the deadline; true when every sink caught up. */
  async flush(deadline: number): Promise<boolean> {
    const results = await Promise.all(this.workers.map((w) => w.flush(deadline)));
    return results.every(Boolean);
  }

  async stop(): Promise<void> {
    // The sinks close beside the workers: a journal write waiting on a failing disk is given up (its events stay in the
    // spool) rather than holding its worker, and so the exit.
    await Promise.all([...this.workers.map((w) => w.stop()), ...this.sinks.map((s) => s.close().catch(() => undefined))]);
    await this.o.deadLetters.close();
  }

  /** Oldest undelivered event and failing time are read when Prometheus scrapes. */
  private registerGauges(): void {
    this.o.metrics.gauges = {
      oldestUndeliveredAge: async () => {
        const now = Date.now();
        const oldest = new Map<string, number>();
        for (const region of this.o.spools.keys()) oldest.set(region, now);
        for (const w of this.workers) {
          const ts = await w.oldestPendingTimestamp();
          if (ts !== undefined) oldest.set(w.region, Math.min(oldest.get(w.region) ?? ts, ts));
        }
        return [...oldest].map(([region, ts]) => [region, Math.max(0, (now - ts) / 1000)]);
      },
      sinkFailing: () => this.workers.map((w) => [w.region, w.sinkName, w.failingFor() / 1000]),
      pacePause: () => (this.o.pacer?.pace.gapMs ?? 0) / 1000,
    };
  }
}
