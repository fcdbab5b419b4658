import { loadCursor, saveCursor } from './cursor-store';
import type { SpoolPosition } from './types';

export function comparePositions(a: SpoolPosition, b: SpoolPosition): number {
  return a.segment !== b.segment ? a.segment - b.segment : a.offset - b.offset;
}

/**
 * Each consumer's cursor in memory, and its persistence. Writes of one consumer's cursor are chained so two never race on
 * the same temp file, and coalesced: after a burst of acknowledgements only the newest position is written, once. A failed
 * write is reported and otherwise ignored, since a stale cursor only means re-delivery.
 */
export class ConsumerCursors {
  private readonly positions = new Map<string, SpoolPosition>();
  private readonly saved = new Map<string, SpoolPosition>();
  private readonly saves = new Map<string, Promise<void>>();

  private constructor(
    private readonly dir: string,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Loads the persisted cursors; `clamp` turns a stored position (or none) into a valid one. */
  static async load(
    dir: string,
    consumers: readonly string[],
    clamp: (stored: SpoolPosition | undefined) => SpoolPosition,
    onError: (err: Error) => void,
  ): Promise<ConsumerCursors> {
    const cursors = new ConsumerCursors(dir, onError);
    for (const consumer of consumers) {
      const stored = await loadCursor(dir, consumer);
      cursors.positions.set(consumer, clamp(stored));
      if (stored) cursors.saved.set(consumer, stored);
    }
    return cursors;
  }

  get size(): number {
    return this.positions.size;
  }

  get(consumer: string): SpoolPosition {
    const pos = this.positions.get(consumer);
    if (!pos) throw new Error(`unknown spool consumer ${JSON.stringify(consumer)}`);
    return { ...pos };
  }

  /** Moves the cursor in memory only; `persist` writes it. */
  set(consumer: string, pos: SpoolPosition): void {
    this.get(consumer);
    this.positions.set(consumer, { ...pos });
  }

  entries(): IterableIterator<[string, SpoolPosition]> {
    return this.positions.entries();
  }

  /** Writes the cursor unless the file already holds it; `again`: even then (its file was removed). */
  persist(consumer: string, again = false): Promise<void> {
    const previous = this.saves.get(consumer) ?? Promise.resolve();
    const save = previous.then(async () => {
      const pos = this.positions.get(consumer);
      const saved = this.saved.get(consumer);
      if (!pos || (!again && saved && comparePositions(pos, saved) === 0)) return;
      try {
        await saveCursor(this.dir, consumer, pos);
        this.saved.set(consumer, pos);
      } catch (err) {
        this.onError(err as Error);
      }
    });
    this.saves.set(consumer, save);
    return save;
  }

  /** Waits for every cursor write in progress. */
  async settle(): Promise<void> {
    await Promise.all([...this.saves.values()]);
  }
}
