import type { RecordedEvent } from '../types';

export interface RecordOptions {
  /**
   * The call was handed to Code Engine, so what it asked may have happened: its event is kept whatever the disk does, and
   * the call's answer waits for it to be durable (at most SPOOL_HOLD_MS). False (the default) for a call the gateway
   * refused itself: while the spool cannot be written its event is kept in memory and in the log, and nothing waits.
   */
  forwarded?: boolean;
}

/** Events that could not be written to the spool before shutdown (each also written to the process log). */
export interface UnwrittenReport {
  count: number;
  ids: string[];
}

/**
 * Where built events go. `record` resolves once the event is durable, or once the disk-failure policy says the call may
 * be answered anyway (see RecordOptions and SpoolRecorder); the proxy completes the client's response only then.
 */
export interface EventRecorder {
  record(event: RecordedEvent, options?: RecordOptions): Promise<void>;
  /** False while events cannot be written (new calls are then refused rather than let go unaudited). */
  isHealthy(): boolean;
  /** Writes what is pending (until `deadline`, if given) and releases files; reports what could not be written. */
  close(deadline?: number): Promise<UnwrittenReport>;
}
