import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * A metric's child for one label set, resolved once: prom-client otherwise hashes the label object on every
 * observation, which showed as ~1.5% of a proxied call's CPU. Label values are few (regions, upstreams, status
 * classes), so the cache stays small.
 */
function childrenOf<T>(resolve: (...values: string[]) => T): (...values: string[]) => T {
  const cache = new Map<string, T>();
  return (...values) => {
    const key = values.join('\0');
    let child = cache.get(key);
    if (child === undefined) {
      child = resolve(...values);
      cache.set(key, child);
    }
    return child;
  };
}

/**
 * The gateway's Prometheus metrics, on the admin port at /metrics. Two registries, because two threads own
 * them: `Metrics` (the proxy thread: calls, recording, the spool) and `DeliveryMetrics` (the delivery thread:
 * what each sink did). /metrics serves both. Neither is prom-client's global registry, so several gateways in
 * one process (tests) do not mix their numbers.
 */
export class Metrics {
  readonly registry = new Registry();
  /** Spool sizes, read when Prometheus scrapes. */
  spoolBytesOf: () => Iterable<[region: string, bytes: number]> = () => [];
  /** Per region: events waiting for the disk, and how long writes have been failing (0: they are not). */
  spoolStateOf: () => Iterable<[region: string, awaitingDisk: number, failingSeconds: number]> = () => [];
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
  readonly eventsDropped = new Counter({
    name: 'ce_audit_events_dropped_total',
    help: 'Undelivered events deleted because the spool was full and SPOOL_FULL_POLICY=drop-oldest.',
    labelNames: ['region'] as const,
    registers: [this.registry],
  });
  readonly answeredBeforeDurable = new Counter({
    name: 'ce_audit_events_answered_before_durable_total',
    help: 'Calls answered while their event was not yet durable in the spool (held SPOOL_HOLD_MS, or refused while the spool could not be written): each event waits in memory and is copied into the process log, per region.',
    labelNames: ['region'] as const,
    registers: [this.registry],
  });
  readonly eventsNotSpooled = new Counter({
    name: 'ce_audit_events_not_spooled_total',
    help: 'Events that are not (or no longer) in the spool, per region and reason: unwritten_at_shutdown and memory_full (their only copy is in the process log), segment_removed (spool files deleted from under the gateway: lost).',
    labelNames: ['region', 'reason'] as const,
    registers: [this.registry],
  });
  readonly awaitingDisk = new Gauge({
    name: 'ce_audit_events_awaiting_disk',
    help: 'Events appended to the spool and not yet durable (waiting for a write, or kept in memory while the disk fails), per region.',
    labelNames: ['region'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [region, waiting] of this.spoolStateOf()) this.awaitingDisk.set({ region }, waiting);
    },
  });
  readonly spoolWriteFailing = new Gauge({
    name: 'ce_audit_spool_write_failing_seconds',
    help: 'How long writes to the spool have been failing, per region (0 when they succeed). New calls are refused meanwhile.',
    labelNames: ['region'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [region, , failing] of this.spoolStateOf()) this.spoolWriteFailing.set({ region }, failing);
    },
  });
  readonly callsRefused = new Counter({
    name: 'ce_audit_calls_refused_total',
    help: 'Calls the gateway refused itself, by reason (spool_full, spool_unwritable, bad_request, payload_too_large, ...).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly spoolBytes = new Gauge({
    name: 'ce_audit_spool_bytes',
    help: 'Bytes of undelivered events in the spool, per region.',
    labelNames: ['region'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [region, bytes] of this.spoolBytesOf()) this.spoolBytes.set({ region }, bytes);
    },
  });
  readonly upstreamDuration = new Histogram({
    name: 'ce_audit_upstream_request_duration_seconds',
    help: 'Duration of proxied calls from request to the end of the response, per region, upstream and status class.',
    labelNames: ['region', 'upstream', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly recordDuration = new Histogram({
    name: 'ce_audit_event_record_duration_seconds',
    help: "Time from building a call's event until it is durable in the spool (the call's last byte waits for it), per region.",
    labelNames: ['region'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  /** Per-call observations, with their label sets resolved once (see childrenOf). */
  readonly recordedIn = childrenOf((region) => this.eventsRecorded.labels(region));
  readonly recordDurationIn = childrenOf((region) => this.recordDuration.labels(region));
  readonly upstreamDurationOf = childrenOf((region, upstream, status) => this.upstreamDuration.labels(region, upstream, status));

  /**
   * `processMetrics`: Node's process metrics (CPU, memory, event loop, GC) in this registry too. The standalone
   * gateway owns its process and reports them; embedded in someone else's app, the app does (prom-client keeps
   * one event-loop and GC observer per call, so several embedded instances would each add theirs).
   */
  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'ce_audit_' });
  }
}

/** Values the delivery side reads when Prometheus scrapes. */
export interface DeliveryGauges {
  oldestUndeliveredAge: () => Promise<Iterable<[region: string, seconds: number]>>;
  sinkFailing: () => Iterable<[region: string, sink: string, seconds: number]>;
  pacePause: () => number;
}

export class DeliveryMetrics {
  readonly registry = new Registry();
  gauges: DeliveryGauges = { oldestUndeliveredAge: async () => [], sinkFailing: () => [], pacePause: () => 0 };
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
  readonly oldestUndeliveredAge = new Gauge({
    name: 'ce_audit_oldest_undelivered_event_age_seconds',
    help: 'Age of the oldest event not yet delivered to every sink, per region (0 when all are delivered).',
    labelNames: ['region'] as const,
    registers: [this.registry],
    collect: async () => {
      for (const [region, seconds] of await this.gauges.oldestUndeliveredAge()) this.oldestUndeliveredAge.set({ region }, seconds);
    },
  });
  readonly sinkFailing = new Gauge({
    name: 'ce_audit_sink_failing_seconds',
    help: 'How long a sink has been failing without a successful delivery, per region and sink (0 when healthy).',
    labelNames: ['region', 'sink'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [region, sink, seconds] of this.gauges.sinkFailing()) this.sinkFailing.set({ region, sink }, seconds);
    },
  });
  readonly pacePause = new Gauge({
    name: 'ce_audit_delivery_pace_pause_seconds',
    help: 'Pause between the batches of a worker draining a backlog while calls are being served (DELIVERY_PACING; 0: not paused).',
    registers: [this.registry],
    collect: () => {
      this.pacePause.set(this.gauges.pacePause());
    },
  });
}
