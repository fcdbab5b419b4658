import type { SpoolPosition, SpoolRecord } from '../spool/types';
import type { Region } from '../types';
import type { RegionState } from './protocol';
import { positionAtOrAfter, type SpoolReader } from './worker';

export type Rpc = <T>(message: { t: 'read' | 'ack'; region: Region } & Record<string, unknown>) => Promise<T>;

/**
 * A region's spool as the delivery thread sees it: reads and acknowledgements go to the proxy thread, which
 * owns the spool; the durable end and the cursors are mirrored here from its messages, so the synchronous
 * parts of the SpoolReader interface stay synchronous.
 */
export class RemoteSpool implements SpoolReader {
  private end: SpoolPosition;
  private readonly cursors: Map<string, SpoolPosition>;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly region: Region,
    state: RegionState,
    private readonly rpc: Rpc,
  ) {
    this.end = state.end;
    this.cursors = new Map(Object.entries(state.cursors));
  }

  read(from: SpoolPosition, maxEvents: number, maxBytes: number): Promise<SpoolRecord[]> {
    return this.rpc<SpoolRecord[]>({ t: 'read', region: this.region, from, maxEvents, maxBytes });
  }

  cursor(consumer: string): SpoolPosition {
    return this.cursors.get(consumer) ?? { segment: 0, offset: 0 };
  }

  async acknowledge(consumer: string, next: SpoolPosition): Promise<void> {
    const position = await this.rpc<SpoolPosition>({ t: 'ack', region: this.region, consumer, next });
    // Two acknowledgements may be on their way (see DeliveryWorker.loop): the mirror only ever moves forward.
    if (!positionAtOrAfter(this.cursor(consumer), position)) this.cursors.set(consumer, position);
  }

  onDurable(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get endPosition(): SpoolPosition {
    return this.end;
  }

  /** Only ever asked whether it is zero (see DeliveryWorker.oldestPendingTimestamp). */
  pending(consumer: string): number {
    return positionAtOrAfter(this.cursor(consumer), this.end) ? 0 : 1;
  }

  durable(end: SpoolPosition): void {
    this.end = end;
    for (const l of this.listeners) l();
  }

  moved(consumer: string, position: SpoolPosition): void {
    this.cursors.set(consumer, position);
  }
}
