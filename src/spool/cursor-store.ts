import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SpoolPosition } from './types';

const CONSUMER_NAME = /^[a-z0-9-]+$/;

export function assertConsumerName(consumer: string): void {
  if (!CONSUMER_NAME.test(consumer)) throw new Error(`spool consumer name ${JSON.stringify(consumer)} must match [a-z0-9-]+`);
}

function cursorPath(dir: string, consumer: string): string {
  return path.join(dir, `cursor-${consumer}.json`);
}

/**
 * The persisted cursor, or undefined when there is none usable. An unreadable cursor is treated as missing: the consumer
 * restarts at the oldest record, which re-delivers but loses nothing. (Without fsync a power loss can leave the renamed
 * file empty.)
 */
export async function loadCursor(dir: string, consumer: string): Promise<SpoolPosition | undefined> {
  let text: string;
  try {
    text = await readFile(cursorPath(dir, consumer), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null) return undefined;
    const { segment, offset } = value as Record<string, unknown>;
    if (!Number.isSafeInteger(segment) || !Number.isSafeInteger(offset)) return undefined;
    return { segment: segment as number, offset: offset as number };
  } catch {
    return undefined;
  }
}

/** Replaces the cursor file atomically (readers see the old or the new one, never a mix). No fsync: see loadCursor. */
export async function saveCursor(dir: string, consumer: string, pos: SpoolPosition): Promise<void> {
  const file = cursorPath(dir, consumer);
  const temp = `${file}.tmp`;
  await writeFile(temp, JSON.stringify({ segment: pos.segment, offset: pos.offset }), { mode: 0o640 });
  await rename(temp, file);
}
