/**
 * The events of a trail, from every input, grouped by log and sequence number. Each distinct version of an event
 * (distinct in canonical form: a copy whose keys were reordered or whose whitespace changed is the same version, and
 * has the same recomputed hash) is kept once with every place it was found, its claimed hash and the hash recomputed
 * from its content. The text is kept rather than the parsed event (a third of the memory); it is parsed again only
 * to tell which fields of an altered copy differ.
 */
import { canonicalJson } from '../integrity/canonical-json';
import { readChainBlock, recomputeEventHash, type ChainBlock } from '../integrity/chain-block';
import { readCheckpointFields, type CheckpointFields } from '../integrity/checkpoint-event';
import type { Candidate, SourceFormat } from './formats';

export interface EventVersion {
  log: string;
  seq: number;
  block: ChainBlock;
  /** The event's JSON as the copy holds it. */
  text: string;
  id: string | undefined;
  eventTime: string | undefined;
  /** Identity for deduplication: the recomputed and claimed hashes (the text when it cannot be canonicalised). */
  key: string;
  /** Hash recomputed from the content; undefined when the content is not I-JSON. */
  computed: string | undefined;
  /** computed === block.hash */
  intact: boolean;
  /** Why the content could not be canonicalised. */
  contentProblem: string | undefined;
  checkpoint: { fields: CheckpointFields } | { problem: string } | undefined;
  sources: string[];
  formats: Set<SourceFormat>;
  /** LogDNA: top-level fields shown beside `_line` that differ from the event in it. */
  viewDiffers: string[];
}

export interface Trail {
  /** log id -> seq -> distinct versions */
  logs: Map<string, Map<number, EventVersion[]>>;
  /** Copies of an event already seen (same canonical form). */
  duplicates: number;
  /** Events that carry no integrity block (another writer's, or IBM's own). */
  unchained: number;
  /** Candidate lines that are not JSON objects at all. */
  unparsable: number;
  /** Events whose integrity block is malformed. */
  malformed: Array<{ source: string; problem: string }>;
}

export function emptyTrail(): Trail {
  return { logs: new Map(), duplicates: 0, unchained: 0, unparsable: 0, malformed: [] };
}

function sameValue(a: unknown, b: unknown): boolean {
  try {
    return canonicalJson(a) === canonicalJson(b);
  } catch {
    return false;
  }
}

/** LogDNA merges the line's parsed fields around `_line`: those it shows must say what the line says. */
function viewDifferences(event: Record<string, unknown>, view: Record<string, unknown> | undefined): string[] {
  if (!view) return [];
  const differs: string[] = [];
  for (const key of Object.keys(event)) {
    if (Object.hasOwn(view, key) && !sameValue(view[key], event[key])) differs.push(key);
  }
  return differs;
}

/** Adds one candidate to the trail. */
export function addCandidate(trail: Trail, c: Candidate): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(c.text);
  } catch {
    trail.unparsable++;
    return;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    trail.unparsable++;
    return;
  }
  const event = parsed as Record<string, unknown>;
  const read = readChainBlock(event);
  if (read === undefined) {
    trail.unchained++;
    return;
  }
  if ('problem' in read) {
    trail.malformed.push({ source: c.source, problem: read.problem });
    return;
  }
  const { block } = read;
  let computed: string | undefined;
  let contentProblem: string | undefined;
  try {
    computed = recomputeEventHash(event, block).toString('base64');
  } catch (err) {
    contentProblem = (err as Error).message;
  }
  const key = computed === undefined ? c.text : `${computed}:${block.hash}`;
  let bySeq = trail.logs.get(block.log);
  if (!bySeq) trail.logs.set(block.log, (bySeq = new Map()));
  let versions = bySeq.get(block.seq);
  if (!versions) bySeq.set(block.seq, (versions = []));
  const viewDiffers = viewDifferences(event, c.view);
  const same = versions.find((v) => v.key === key);
  if (same) {
    trail.duplicates++;
    same.sources.push(c.source);
    same.formats.add(c.format);
    for (const f of viewDiffers) if (!same.viewDiffers.includes(f)) same.viewDiffers.push(f);
    return;
  }
  versions.push({
    log: block.log,
    seq: block.seq,
    block,
    text: c.text,
    id: typeof event.id === 'string' ? event.id : undefined,
    eventTime: typeof event.eventTime === 'string' ? event.eventTime : undefined,
    key,
    computed,
    intact: computed === block.hash,
    contentProblem,
    checkpoint: readCheckpointFields(event),
    sources: [c.source],
    formats: new Set([c.format]),
    viewDiffers,
  });
}

/** Paths (a.b.c) where two versions of an event differ, at most 10 of them. */
export function versionDifferences(a: EventVersion, b: EventVersion): string[] {
  try {
    return differingFields(JSON.parse(a.text), JSON.parse(b.text));
  } catch {
    return [];
  }
}

/** Paths (a.b.c) where two events differ, at most `limit` of them. */
export function differingFields(a: unknown, b: unknown, prefix = '', limit = 10): string[] {
  if (sameValue(a, b)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObj(a) || !isObj(b)) return [prefix || '(the whole event)'];
  const out: string[] = [];
  for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (out.length >= limit) break;
    const path = prefix ? `${prefix}.${key}` : key;
    if (!Object.hasOwn(a, key) || !Object.hasOwn(b, key)) out.push(path);
    else out.push(...differingFields(a[key], b[key], path, limit - out.length));
  }
  return out;
}
