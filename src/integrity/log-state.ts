/**
 * Where a region's chain stands, kept beside its spool (`<SPOOL_DIR>/<region>/chain-state.json`) so that the
 * chain survives the spool deleting delivered segments. The spool's records stay the truth: on start-up the state
 * is only a starting point, checked against (and brought forward by) the records after `position`.
 *
 *   {"v":1,"log":..., "size":n, "lastHash":base64|null, "frontier":[base64...], "lastInner":[base64...]|null,
 *    "lastCheckpoint":{"seq":n,"hash":base64,"atMs":n}|null, "position":{"segment":n,"offset":n}}
 *
 * Replaced atomically (temporary file, fdatasync with SPOOL_FSYNC, rename, directory sync), and written before the
 * spool deletes any segment, after each checkpoint and at shutdown.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { syncDirectory } from '../storage/sync-directory';
import type { SpoolPosition } from '../spool/types';
import { decodeBase64 } from './note';
import { Frontier, HASH_BYTES } from './merkle';

export const STATE_FILE = 'chain-state.json';
const STATE_VERSION = 1;

export interface CheckpointRef {
  seq: number;
  hash: string;
  atMs: number;
}

/** The chain after its event number size - 1. */
export interface ChainPoint {
  size: number;
  lastHash: string | null;
  frontier: Frontier;
  lastCheckpoint: CheckpointRef | null;
}

export interface LogState extends ChainPoint {
  log: string;
  /** Spool position after the event number size - 1: where the records not yet in this state start. */
  position: SpoolPosition;
}

function hashes(list: unknown): Buffer[] | undefined {
  if (!Array.isArray(list)) return undefined;
  const out: Buffer[] = [];
  for (const item of list) {
    const b = typeof item === 'string' ? decodeBase64(item) : undefined;
    if (b?.length !== HASH_BYTES) return undefined;
    out.push(b);
  }
  return out;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The state in a file, undefined when there is none; throws (with the reason) when the file cannot be trusted. */
export async function readLogState(dir: string): Promise<LogState | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, STATE_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const s = JSON.parse(text) as Record<string, unknown>;
  const frontier = hashes(s.frontier);
  const lastInner = s.lastInner === null ? undefined : hashes(s.lastInner);
  const position = s.position as Record<string, unknown> | undefined;
  const cp = s.lastCheckpoint as Record<string, unknown> | null | undefined;
  if (
    s.v !== STATE_VERSION ||
    typeof s.log !== 'string' ||
    !isCount(s.size) ||
    (s.lastHash !== null && typeof s.lastHash !== 'string') ||
    (s.size === 0) !== (s.lastHash === null) ||
    !frontier ||
    (s.lastInner !== null && !lastInner) ||
    !position ||
    !isCount(position.segment) ||
    !isCount(position.offset) ||
    (cp !== null && (!cp || !isCount(cp.seq) || typeof cp.hash !== 'string' || !isCount(cp.atMs)))
  ) {
    throw new Error(`${STATE_FILE} is not a chain state of version ${STATE_VERSION}`);
  }
  return {
    log: s.log,
    size: s.size,
    lastHash: s.lastHash as string | null,
    frontier: Frontier.fromHashes(s.size, frontier, lastInner),
    lastCheckpoint: cp ? { seq: cp.seq as number, hash: cp.hash as string, atMs: cp.atMs as number } : null,
    position: { segment: position.segment, offset: position.offset },
  };
}

export async function writeLogState(dir: string, state: LogState, fsync: boolean): Promise<void> {
  const inner = state.frontier.lastInnerProof64();
  const text = JSON.stringify({
    v: STATE_VERSION,
    log: state.log,
    size: state.size,
    lastHash: state.lastHash,
    frontier: state.frontier.hashes64(),
    lastInner: inner ?? null,
    lastCheckpoint: state.lastCheckpoint,
    position: state.position,
  });
  const file = path.join(dir, STATE_FILE);
  const tmp = `${file}.tmp`;
  const handle = await open(tmp, 'w', 0o640);
  try {
    await handle.writeFile(text, 'utf8');
    if (fsync) await handle.datasync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  if (fsync) await syncDirectory(dir);
}
