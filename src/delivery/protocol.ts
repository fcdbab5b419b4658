import type { SpoolPosition, SpoolRecord } from '../spool/types';
import type { Region } from '../types';

/**
 * Messages between the proxy thread (which owns the spool) and the delivery thread (which reads it and sends
 * events out). Requests carry an id; the answer is a `reply` with the same id.
 */
export interface RegionState {
  region: Region;
  end: SpoolPosition;
  cursors: Record<string, SpoolPosition>;
}

/** What the delivery thread starts from. */
export interface DeliveryThreadData {
  env: Record<string, string>;
  regions: RegionState[];
}

export type Reply = { t: 'reply'; id: number; ok: true; value: unknown } | { t: 'reply'; id: number; ok: false; error: string };

export type ToDelivery =
  /** New events are durable in a region's spool, up to `end`. */
  | { t: 'durable'; region: Region; end: SpoolPosition }
  /** A cursor moved without the delivery thread asking (the spool dropped its oldest events). */
  | { t: 'cursor'; region: Region; consumer: string; position: SpoolPosition }
  | { t: 'flush'; id: number; deadline: number }
  | { t: 'stop'; id: number }
  | { t: 'metrics'; id: number }
  | { t: 'problems'; id: number }
  | Reply;

export type ToProxy =
  | { t: 'read'; id: number; region: Region; from: SpoolPosition; maxEvents: number; maxBytes: number }
  | { t: 'ack'; id: number; region: Region; consumer: string; next: SpoolPosition }
  /** One line of the delivery thread's log (JSON), written to the gateway's log as is. */
  | { t: 'log'; line: string }
  | { t: 'ready' }
  | Reply;

export type ReadResult = SpoolRecord[];
