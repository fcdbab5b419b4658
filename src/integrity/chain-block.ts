/**
 * The integrity block every event carries, beside IBM's fields (which it never changes):
 *
 *   "auditChain": {"hash": "<base64>", "log": "<log id>", "prev": "<base64>" | null, "seq": <n>, "v": 1}
 *
 * `log` names one writer's chain (ce-audit-gateway/<region>/<instance>/<start ms>); `seq` counts its events from
 * 0 with no gaps; `prev` is the previous event's `hash` (null at 0); `hash` is the RFC 6962 leaf hash
 * SHA-256(0x00 || JCS(event without auditChain.hash)), base64: one value links the chain and is the event's leaf
 * in the log's Merkle tree.
 */
import { canonicalJson } from './canonical-json';
import { decodeBase64 } from './note';
import { HASH_BYTES, leafHash } from './merkle';

export const CHAIN_FIELD = 'auditChain';
export const CHAIN_VERSION = 1;
/** Longest log id the gateway writes; keeps the block within INTEGRITY_BLOCK_MAX_BYTES. */
export const MAX_LOG_ID_LENGTH = 200;
/** Room an event leaves for its integrity block within Activity Tracker's 16 KB. */
export const INTEGRITY_BLOCK_MAX_BYTES = 512;

export interface ChainBlock {
  v: number;
  log: string;
  seq: number;
  prev: string | null;
  hash: string;
}

/** `"auditChain":{...}` without the hash: what the event hash covers. `logJson` is JSON.stringify(log). */
export function unhashedMember(logJson: string, seq: number, prev: string | null): string {
  return `"${CHAIN_FIELD}":{"log":${logJson},"prev":${prev === null ? 'null' : `"${prev}"`},"seq":${seq},"v":${CHAIN_VERSION}}`;
}

/** `"auditChain":{...}` as the event carries it. */
export function hashedMember(logJson: string, seq: number, prev: string | null, hash: string): string {
  return `"${CHAIN_FIELD}":{"hash":"${hash}","log":${logJson},"prev":${prev === null ? 'null' : `"${prev}"`},"seq":${seq},"v":${CHAIN_VERSION}}`;
}

function isHash(value: unknown): value is string {
  return typeof value === 'string' && decodeBase64(value)?.length === HASH_BYTES;
}

/** The block of a parsed event, or why it is not a valid one (undefined: the event has none). */
export function readChainBlock(event: Record<string, unknown>): { block: ChainBlock } | { problem: string } | undefined {
  const raw = event[CHAIN_FIELD];
  if (raw === undefined) return undefined;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { problem: `${CHAIN_FIELD} is not an object` };
  const b = raw as Record<string, unknown>;
  if (b.v !== CHAIN_VERSION) return { problem: `${CHAIN_FIELD}.v is ${JSON.stringify(b.v)}, not ${CHAIN_VERSION}` };
  if (typeof b.log !== 'string' || b.log === '') return { problem: `${CHAIN_FIELD}.log is not a non-empty string` };
  if (typeof b.seq !== 'number' || !Number.isSafeInteger(b.seq) || b.seq < 0)
    return { problem: `${CHAIN_FIELD}.seq is not a sequence number` };
  if (b.prev !== null && !isHash(b.prev)) return { problem: `${CHAIN_FIELD}.prev is neither null nor a base64 SHA-256` };
  if (!isHash(b.hash)) return { problem: `${CHAIN_FIELD}.hash is not a base64 SHA-256` };
  const keys = Object.keys(b).sort().join(',');
  if (keys !== 'hash,log,prev,seq,v') return { problem: `${CHAIN_FIELD} has other members (${keys})` };
  return { block: { v: b.v, log: b.log, seq: b.seq, prev: b.prev as string | null, hash: b.hash as string } };
}

/** The event hash recomputed from a parsed event: the leaf hash of its canonical JSON without auditChain.hash. */
export function recomputeEventHash(event: Record<string, unknown>, block: ChainBlock): Buffer {
  const withoutHash: Record<string, unknown> = {
    ...event,
    [CHAIN_FIELD]: { log: block.log, prev: block.prev, seq: block.seq, v: block.v },
  };
  return leafHash(canonicalJson(withoutHash));
}
