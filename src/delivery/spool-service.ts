import type { MessagePort, Worker } from 'node:worker_threads';
import type { SpoolRecorder } from '../record/spool-recorder';
import type { RegionSpool } from '../spool/region-spool';
import type { Region } from '../types';
import type { RegionState, ToDelivery, ToProxy } from './protocol';

type Port = Pick<Worker | MessagePort, 'postMessage'>;

/**
 * The proxy thread's side of delivery in another thread: it answers the delivery thread's reads and
 * acknowledgements from the spool it owns, and tells it when new events are durable (at most once per
 * region per turn of the event loop, however many group commits happened) or when a cursor was moved.
 */
export class SpoolService {
  private readonly unsubscribe: Array<() => void> = [];
  private readonly dirty = new Set<Region>();
  private scheduled = false;
  private port: Port | undefined;

  constructor(private readonly recorder: SpoolRecorder) {
    for (const [region, spool] of recorder.regions) {
      this.unsubscribe.push(spool.onDurable(() => this.markDurable(region)));
    }
    this.unsubscribe.push(recorder.onDropped((region) => this.cursorsMoved(region)));
  }

  /** The state a (new) delivery thread starts from. */
  states(): RegionState[] {
    return [...this.recorder.regions].map(([region, spool]) => ({
      region,
      end: spool.endPosition,
      cursors: cursorsOf(spool, this.recorder.consumers),
    }));
  }

  attach(port: Port | undefined): void {
    this.port = port;
  }

  /** Handles a request of the delivery thread; false when the message is not one of these. */
  async handle(message: ToProxy, port: Port): Promise<boolean> {
    if (message.t !== 'read' && message.t !== 'ack') return false;
    try {
      const spool = this.recorder.spoolFor(message.region as Region);
      let value: unknown;
      if (message.t === 'read') value = await spool.read(message.from, message.maxEvents, message.maxBytes);
      else {
        await spool.acknowledge(message.consumer, message.next);
        value = spool.cursor(message.consumer);
      }
      port.postMessage({ t: 'reply', id: message.id, ok: true, value } satisfies ToDelivery);
    } catch (err) {
      port.postMessage({ t: 'reply', id: message.id, ok: false, error: (err as Error).message } satisfies ToDelivery);
    }
    return true;
  }

  close(): void {
    for (const u of this.unsubscribe) u();
    this.port = undefined;
  }

  private markDurable(region: Region): void {
    this.dirty.add(region);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      for (const r of this.dirty)
        this.port?.postMessage({ t: 'durable', region: r, end: this.recorder.spoolFor(r).endPosition } satisfies ToDelivery);
      this.dirty.clear();
    });
  }

  private cursorsMoved(region: Region): void {
    const spool = this.recorder.spoolFor(region);
    for (const [consumer, position] of Object.entries(cursorsOf(spool, this.recorder.consumers))) {
      this.port?.postMessage({ t: 'cursor', region, consumer, position } satisfies ToDelivery);
    }
  }
}

function cursorsOf(spool: RegionSpool, consumers: readonly string[]): RegionState['cursors'] {
  return Object.fromEntries(consumers.map((c) => [c, spool.cursor(c)]));
}
