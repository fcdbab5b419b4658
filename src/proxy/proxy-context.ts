import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { EventBuilder, Exchange } from '../audit/event-builder';
import type { GatewayError } from '../errors';
import type { Metrics } from '../metrics';
import type { EventRecorder } from '../record/recorder';
import type { Region } from '../types';

/** What every proxied call shares: built once at start-up. */
export interface ProxyContext {
  recorder: EventRecorder;
  logger: Logger;
  /** Client sockets of upgraded connections (exec sessions), closed at shutdown. */
  tunnels: Set<Duplex>;
  metrics: Metrics;
  captureMaxBytes: number;
  /** MAX_BODY_BYTES (0: no limit). */
  maxBodyBytes: number;
  proto: 'http' | 'https';
  /**
   * Whether a new call may proceed: the spool of its region can be written, and has room (SPOOL_FULL_POLICY); the error to
   * answer when not (the call then never reaches Code Engine).
   */
  admit(method: string, region: Region): GatewayError | undefined;
  /** Builds and records the exchange's event; never rejects (a failure is logged and counted). */
  recordEvent(x: Exchange): Promise<void>;
}

/**
 * Whether a new call may proceed, for every front end (the listener's ProxyCall and the audit middleware): the
 * spool of its region must be writable, and within its capacity policy (SPOOL_FULL_POLICY). The error to answer when not.
 */
export function admissionOf(ctx: Pick<ProxyContext, 'admit'>, method: string, region: Region): GatewayError | undefined {
  return ctx.admit(method, region);
}

/** The `reason` label of ce_audit_calls_refused_total for a refusal by admissionOf: spool_full, spool_unwritable. */
export function admissionRefusalReason(refusal: GatewayError): string {
  return refusal.code.slice(4).toLowerCase();
}

export interface RecordingHooks {
  /** `seconds`: from the start of the event's building until it was durable (what the call's last byte waited). */
  onRecorded?: (x: Exchange, seconds: number) => void;
  onRecordFailed?: (x: Exchange, err: Error) => void;
  /** Counts the events being built and written (a front end waits for them before it closes the spool). */
  inFlight?: { count: number };
}

export function createRecordEvent(builder: EventBuilder, recorder: EventRecorder, logger: Logger, hooks: RecordingHooks = {}) {
  return async (x: Exchange): Promise<void> => {
    let eventId: string | undefined;
    const started = performance.now();
    if (hooks.inFlight) hooks.inFlight.count++;
    try {
      if (x.pendingIdentity) x.identity = await x.pendingIdentity;
      const event = builder.build(x);
      eventId = event.id;
      await recorder.record(event, { forwarded: x.forwarded === true });
      hooks.onRecorded?.(x, (performance.now() - started) / 1000);
      if (logger.isLevelEnabled('debug')) {
        logger.debug(
          {
            transactionId: x.transactionId,
            eventId,
            action: x.match.operation.actions.current,
            status: x.status,
            ms: Date.now() - x.startedAt,
          },
          'call audited',
        );
      }
    } catch (err) {
      hooks.onRecordFailed?.(x, err as Error);
      // Names what was lost, never its contents.
      logger.error(
        { err: { message: (err as Error).message }, eventId, transactionId: x.transactionId, action: x.match.operation.actions.current },
        'audit event could not be recorded',
      );
    } finally {
      if (hooks.inFlight) hooks.inFlight.count--;
    }
  };
}
