/**
 * A checkpoint is an event of its own, delivered to the same sinks as the events it covers, with the action
 * `ceaudit.checkpoint.create` and the Activity Tracker fields an auditor's views expect. Its `auditCheckpoint`
 * block holds the signed note and what lets an export be checked without the log's earlier events:
 *
 *   "auditCheckpoint": {
 *     "frontier":  [base64...],   roots of the perfect subtrees of the tree at `size` (largest first); they fold to `root`
 *     "lastProof": [base64...],   inclusion proof of event size-1 (this checkpoint's auditChain.prev) in that tree
 *     "note":      "<signed note>", origin (= the log id), size, root; Ed25519 signature lines (none when unsigned)
 *     "predecessor": {...},        only in the first checkpoint of a log started while another one was known
 *     "previous":  {"hash", "seq"} | null,   the previous checkpoint of this log
 *     "reason":    "interval" | "idle" | "shutdown" | "recovered" | "start",
 *     "root":      base64, "size": n   (the note's, repeated for readers and queries)
 *   }
 *
 * The checkpoint itself is the log's event number `size`: it covers every event before it and is covered by the
 * next checkpoint.
 */
import { v7 as uuidv7 } from 'uuid';
import { projectCrn } from '../audit/crn';
import { formatEventTime } from '../audit/event-time';
import type { Region } from '../types';
import { canonicalJson, memberSlot } from './canonical-json';
import { CHAIN_FIELD } from './chain-block';

export const CHECKPOINT_ACTION = 'ceaudit.checkpoint.create';
export const CHECKPOINT_FIELD = 'auditCheckpoint';
export const CHECKPOINT_REASONS = ['interval', 'idle', 'shutdown', 'recovered', 'start'] as const;
export type CheckpointReason = (typeof CHECKPOINT_REASONS)[number];

/** Who wrote an older log this one follows, when the gateway had to start a new log (see region-log.ts). */
export interface Predecessor {
  log: string;
  /** Events of that log known to have been written. */
  size: number;
  /** Hash of its last known event (null when it had none). */
  hash: string | null;
  why: string;
}

export interface CheckpointFields {
  frontier: string[];
  lastProof: string[];
  note: string;
  predecessor?: Predecessor | undefined;
  previous: { hash: string; seq: number } | null;
  reason: CheckpointReason;
  root: string;
  size: number;
}

export interface CheckpointEventInput {
  region: Region;
  accountId: string | undefined;
  instance: string;
  log: string;
  atMs: number;
  fields: CheckpointFields;
}

/** The checkpoint event's canonical JSON (without its integrity block) and where the block goes. */
export function buildCheckpointEvent(input: CheckpointEventInput): { id: string; json: string; slot: number } {
  const crn = projectCrn('codeengine', input.region, input.accountId, undefined);
  const f = input.fields;
  // Keys in canonical order throughout, so that serialising takes the fast path.
  const event = {
    action: CHECKPOINT_ACTION,
    [CHECKPOINT_FIELD]: {
      frontier: f.frontier,
      lastProof: f.lastProof,
      note: f.note,
      predecessor: f.predecessor
        ? { hash: f.predecessor.hash, log: f.predecessor.log, size: f.predecessor.size, why: f.predecessor.why }
        : undefined,
      previous: f.previous ? { hash: f.previous.hash, seq: f.previous.seq } : null,
      reason: f.reason,
      root: f.root,
      size: f.size,
    },
    dataEvent: false,
    eventTime: formatEventTime(input.atMs),
    eventType: 'activity',
    id: uuidv7(),
    initiator: { id: 'ce-audit-gateway', name: input.instance, typeURI: 'service/security/clientid' },
    logSourceCRN: crn,
    message: `ce-audit-gateway: create checkpoint ${input.log} size ${f.size}`,
    observer: { name: 'ActivityTracker' },
    outcome: 'success',
    reason: { reasonCode: 200, reasonType: 'OK' },
    saveServiceCopy: true,
    severity: 'normal',
    target: { id: crn, name: input.log, typeURI: 'ceaudit/checkpoint' },
    typeURI: 'http://schemas.dmtf.org/cloud/audit/1.0/event',
  };
  const json = canonicalJson(event);
  return { id: event.id, json, slot: memberSlot(event, json, CHAIN_FIELD) };
}

function stringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

/** The checkpoint block of a parsed event, or why it is malformed (undefined: not a checkpoint). */
export function readCheckpointFields(event: Record<string, unknown>): { fields: CheckpointFields } | { problem: string } | undefined {
  if (event.action !== CHECKPOINT_ACTION && event[CHECKPOINT_FIELD] === undefined) return undefined;
  const raw = event[CHECKPOINT_FIELD];
  if (event.action !== CHECKPOINT_ACTION) return { problem: `${CHECKPOINT_FIELD} on an event whose action is not ${CHECKPOINT_ACTION}` };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { problem: `${CHECKPOINT_FIELD} is missing or not an object` };
  const c = raw as Record<string, unknown>;
  if (!stringList(c.frontier) || !stringList(c.lastProof)) return { problem: 'frontier and lastProof must be lists of base64 hashes' };
  if (typeof c.note !== 'string') return { problem: 'note is not a string' };
  if (typeof c.root !== 'string' || typeof c.size !== 'number' || !Number.isSafeInteger(c.size) || c.size < 0) {
    return { problem: 'root and size are not a hash and a tree size' };
  }
  if (!CHECKPOINT_REASONS.includes(c.reason as CheckpointReason)) return { problem: `unknown reason ${JSON.stringify(c.reason)}` };
  let previous: CheckpointFields['previous'] = null;
  if (c.previous !== null) {
    const p = c.previous as Record<string, unknown> | undefined;
    if (!p || typeof p.hash !== 'string' || typeof p.seq !== 'number') return { problem: 'previous is neither null nor {hash, seq}' };
    previous = { hash: p.hash, seq: p.seq };
  }
  let predecessor: Predecessor | undefined;
  if (c.predecessor !== undefined) {
    const p = c.predecessor as Record<string, unknown> | null;
    if (
      !p ||
      typeof p.log !== 'string' ||
      typeof p.size !== 'number' ||
      (p.hash !== null && typeof p.hash !== 'string') ||
      typeof p.why !== 'string'
    ) {
      return { problem: 'predecessor is not {log, size, hash, why}' };
    }
    predecessor = { log: p.log, size: p.size, hash: p.hash as string | null, why: p.why };
  }
  return {
    fields: {
      frontier: c.frontier,
      lastProof: c.lastProof,
      note: c.note,
      predecessor,
      previous,
      reason: c.reason as CheckpointReason,
      root: c.root,
      size: c.size,
    },
  };
}
