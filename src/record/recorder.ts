import type { RecordedEvent } from '../types';

/**
 * Where built events go. `record` resolves once the event is durable; the proxy completes the client's
 * response only then, so a response the client saw always has its event on disk.
 */
export interface EventRecorder {
  record(event: RecordedEvent): Promise<void>;
  /** False while events cannot be written (the proxy then refuses new calls rather than let them go unaudited). */
  isHealthy(): boolean;
  /** Writes what is pending and releases files. */
  close(): Promise<void>;
}
