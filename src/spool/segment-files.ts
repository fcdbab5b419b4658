import { readdir } from 'node:fs/promises';
import path from 'node:path';

const SEGMENT_NAME = /^seg-(\d{16})\.wal$/;

export function segmentPath(dir: string, seq: number): string {
  return path.join(dir, `seg-${String(seq).padStart(16, '0')}.wal`);
}

/** Sequence numbers of the segment files in `dir`, oldest first. */
export async function listSegments(dir: string): Promise<number[]> {
  const names = await readdir(dir);
  const seqs: number[] = [];
  for (const name of names) {
    const match = SEGMENT_NAME.exec(name);
    if (match?.[1] !== undefined) seqs.push(Number(match[1]));
  }
  return seqs.sort((a, b) => a - b);
}

export function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
