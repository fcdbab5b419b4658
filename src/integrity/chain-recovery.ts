/**
 * Where a region's chain resumes after a start, a restart or a crash. The spool's records are the truth; the saved
 * state (log-state.ts) is where reading them starts:
 *  - the records after the state's position continue it (same log, next sequence number, each `prev` the hash
 *    before): the log continues, brought forward by them;
 *  - no state, but the spool still holds the newest log from its event 0: the log continues, rebuilt from them;
 *  - otherwise (state unreadable or contradicted by the records, or lost with part of the log) a new log starts,
 *    naming the last one it can see as its predecessor, so a verifier can tell a new log after a loss from a
 *    continued one.
 */
import type { SpoolPosition, SpoolRecord } from '../spool/types';
import { CHECKPOINT_ACTION, type Predecessor } from './checkpoint-event';
import { readChainBlock, type ChainBlock } from './chain-block';
import type { ChainPoint, LogState } from './log-state';
import { Frontier } from './merkle';

/** What recovery needs of a spool. */
export interface RecordSource {
  read(from: SpoolPosition, maxEvents: number, maxBytes: number): Promise<SpoolRecord[]>;
}

export type Recovery =
  | { kind: 'continue'; log: string; point: ChainPoint; replayed: number }
  | { kind: 'new'; predecessor: Predecessor | undefined; why: string };

export const EMPTY_POINT: ChainPoint = { size: 0, lastHash: null, frontier: Frontier.EMPTY, lastCheckpoint: null };

const OLDEST: SpoolPosition = { segment: 0, offset: 0 };

async function* recordsFrom(spool: RecordSource, from: SpoolPosition): AsyncGenerator<SpoolRecord> {
  let at = from;
  for (;;) {
    const batch = await spool.read(at, 1000, 4 * 1024 * 1024);
    if (batch.length === 0) return;
    yield* batch;
    at = (batch[batch.length - 1] as SpoolRecord).next;
  }
}

interface Chained {
  block: ChainBlock;
  checkpoint: boolean;
  timestampMs: number;
}

function chainedOf(record: SpoolRecord): Chained | undefined {
  let event: unknown;
  try {
    event = JSON.parse(record.json);
  } catch {
    return undefined;
  }
  if (event === null || typeof event !== 'object' || Array.isArray(event)) return undefined;
  const read = readChainBlock(event as Record<string, unknown>);
  if (!read || !('block' in read)) return undefined;
  return {
    block: read.block,
    checkpoint: (event as Record<string, unknown>).action === CHECKPOINT_ACTION,
    timestampMs: record.timestampMs,
  };
}

/** The chain after one more event, or undefined when the event does not continue it. */
function advance(point: ChainPoint, c: Chained): ChainPoint | undefined {
  if (c.block.seq !== point.size || c.block.prev !== point.lastHash) return undefined;
  return {
    size: point.size + 1,
    lastHash: c.block.hash,
    frontier: point.frontier.append(c.block.hash),
    lastCheckpoint: c.checkpoint ? { seq: c.block.seq, hash: c.block.hash, atMs: c.timestampMs } : point.lastCheckpoint,
  };
}

function predecessorOf(
  last: Chained | undefined,
  fallback: { log: string; point: ChainPoint } | undefined,
  why: string,
): Predecessor | undefined {
  if (last) return { log: last.block.log, size: last.block.seq + 1, hash: last.block.hash, why };
  if (fallback) return { log: fallback.log, size: fallback.point.size, hash: fallback.point.lastHash, why };
  return undefined;
}

/** `stateProblem`: why a state file that exists could not be read. */
export async function recoverChain(spool: RecordSource, state: LogState | undefined, stateProblem?: string): Promise<Recovery> {
  if (state) return fromState(spool, state);
  // No usable state: rebuild from the spool when it holds the newest log whole.
  let current: { log: string; point: ChainPoint | undefined } | undefined;
  let last: Chained | undefined;
  for await (const record of recordsFrom(spool, OLDEST)) {
    const c = chainedOf(record);
    if (!c) continue;
    last = c;
    if (current?.log !== c.block.log) current = { log: c.block.log, point: c.block.seq === 0 ? EMPTY_POINT : undefined };
    current.point = current.point && advance(current.point, c);
  }
  const lost = stateProblem ? `the chain state could not be read (${stateProblem})` : 'no chain state was found';
  if (!current) return { kind: 'new', predecessor: undefined, why: lost };
  if (current.point) return { kind: 'continue', log: current.log, point: current.point, replayed: current.point.size };
  const why = `${lost} and the spool no longer holds log ${current.log} from its first event`;
  return { kind: 'new', predecessor: predecessorOf(last, undefined, why), why };
}

async function fromState(spool: RecordSource, state: LogState): Promise<Recovery> {
  let point: ChainPoint = state;
  let replayed = 0;
  let broken: string | undefined;
  let last: Chained | undefined;
  for await (const record of recordsFrom(spool, state.position)) {
    const c = chainedOf(record);
    if (broken) {
      last = c ?? last;
      continue;
    }
    if (!c) {
      broken = `a record at segment ${record.position.segment} offset ${record.position.offset} has no integrity block`;
      continue;
    }
    last = c;
    const next = c.block.log === state.log ? advance(point, c) : undefined;
    if (!next) {
      broken = `the spool's record ${c.block.log} #${c.block.seq} does not follow the saved chain state (${state.log} #${point.size - 1})`;
      continue;
    }
    point = next;
    replayed++;
  }
  if (!broken) return { kind: 'continue', log: state.log, point, replayed };
  return { kind: 'new', predecessor: predecessorOf(last, { log: state.log, point }, broken), why: broken };
}
