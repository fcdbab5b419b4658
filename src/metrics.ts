import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The gateway's Prometheus metrics, on the admin port at /metrics. One registry per gateway (not prom-client's
 * global one), so several gateways in one process (tests) do not mix their numbers.
 */
/** Values read when Prometheus scrapes, supplied by the parts that own them. */
export interface MetricCollectors {
  spoolBytes?: () => Iterable<[region: string, bytes: number]>;
  oldestUndeliveredAge?: () => Promise<Iterable<[region: string, seconds: number]>>;
  sinkFailing?: () => Iterable<[region: string, sink: string, seconds: number]>;
}

export class Metrics {
  readonly registry = new Registry();
  readonly collectors: MetricCollectors = {};
  readonly eventsRecorded = new Counter({
    name: 'ce_audit_events_recorded_total',
    help: 'Events written to the spool (durable), per region.',
    labelNames: ['region'] as const,
    registers: [this.registry],
  });
  readonly recordFailures = new Counter({
    name: 'ce_audit_events_record_failures_total',
    help: 'Events that could not be written to the spool (the call was answered; the event is lost and logged).',
    labelNames: ['region'] as const,
    registers: [this.registry],
  });
  readonly eventsDelivered = new Counter({
    name: 'ce_audit_events_delivered_total',
    help: 'Events acknowledged by a sink, per region and sink.',
    labelNames: ['region', 'sink'] as const,
    registers: [this.registry],
  });
  readonly eventsRetried = new Counter({
    name: 'ce_audit_events_retried_total',
    help: 'Events in delivery attempts that will be retried (429, 5xx, network errors), per region and sink.',
    labelNames: ['region', 'sink'] as const,
    registers: [this.registry],
  });
  readonly eventsDeadLettered = new Counter({
    name: 'ce_audit_events_dead_lettered_total',
    help: 'Events refused for good by a sink and moved to the dead-letter file, per region and sink.',
    labelNames: ['region', 'sink'] as const,
    registers: [this.registry],
  });
  readonly eventsDropped = new Counter({
    name: 'ce_audit_events_dropped_total',
    help: 'Undelivered events deleted because the spool was full and SPOOL_FULL_POLICY=drop-oldest.',
    labelNames: ['region'] as const,
    registers: [this.registry],
  });
  readonly callsRefused = new Counter({
    name: 'ce_audit_calls_refused_total',
    help: 'Calls the gateway refused itself, by reason (spool_full, journal_unavailable, bad_request).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly spoolBytes = new Gauge({
    name: 'ce_audit_spool_bytes',
    help: 'Bytes of undelivered events in the spool, per region.',
    labelNames: ['region'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [region, bytes] of this.collectors.spoolBytes?.() ?? []) this.spoolBytes.set({ region }, bytes);
    },
  });
  readonly oldestUndeliveredAge = new Gauge({
    name: 'ce_audit_oldest_undelivered_event_age_seconds',
    help: 'Age of the oldest event not yet delivered to every sink, per region (0 when all are delivered).',
    labelNames: ['region'] as const,
    registers: [this.registry],
    collect: async () => {
      for (const [region, seconds] of (await this.collectors.oldestUndeliveredAge?.()) ?? [])
        this.oldestUndeliveredAge.set({ region }, seconds);
    },
  });
  readonly sinkFailing = new Gauge({
    name: 'ce_audit_sink_failing_seconds',
    help: 'How long a sink has been failing without a successful delivery, per region and sink (0 when healthy).',
    labelNames: ['region', 'sink'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [region, sink, seconds] of this.collectors.sinkFailing?.() ?? []) this.sinkFailing.set({ region, sink }, seconds);
    },
  });
  readonly upstreamDuration = new Histogram({
    name: 'ce_audit_upstream_request_duration_seconds',
    help: 'Duration of proxied calls from request to the end of the response, per region, upstream and status class.',
    labelNames: ['region', 'upstream', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'ce_audit_' });
  }
}
