/**
 * Verifies one log of a trail: every version of every event found, against the chain and the signed checkpoints.
 *
 * 1. Checkpoints: each one's note is parsed and its signature checked against the trusted keys; its frontier must
 *    fold to the signed root and its lastProof must prove its `prev` (the hash of event size-1) into that root. A
 *    checkpoint that passes is an anchor: it says which hash the log holds at size-1.
 * 2. The walk, from the newest event down: the hash expected at each place comes from an anchor or from the `prev` of
 *    the event after it, so one trusted checkpoint vouches for every event below it back to the first gap. The copy
 *    carrying the expected hash with matching content is the log's event there; any other copy is altered or forged.
 * 3. Gaps inside the range a checkpoint covers are missing events (truncated when they reach the newest checkpoint);
 *    the roots are recomputed from the events where the input holds them (or from an earlier checkpoint's frontier).
 */
import { decodeBase64, parseCheckpointBody, parseNote, checkSignatures, type SignatureVerdict, type TrustedKey } from '../integrity/note';
import { Frontier, verifyInclusion } from '../integrity/merkle';
import type { CheckpointFields, Predecessor } from '../integrity/checkpoint-event';
import { note, problem, ranges, rangeText, type Finding } from './findings';
import { versionDifferences, type EventVersion } from './trail';

export interface VerifyOptions {
  keys: readonly TrustedKey[];
  /** Accept checkpoints without a signature (a gateway run without AUDIT_SIGNING_KEY_FILE). */
  allowUnsigned: boolean;
}

/** A checkpoint that passed: what the log held at size-1, and its tree. */
export interface Anchor {
  seq: number;
  size: number;
  root: Buffer;
  prevHash: string | null;
  frontier: Frontier;
  version: EventVersion;
  fields: CheckpointFields;
  verdict: SignatureVerdict;
}

/** What a later log said about this one (its first checkpoint's predecessor), vouched for by that log. */
export interface OutsideAnchor {
  size: number;
  hash: string | null;
  by: string;
}

export interface LogReport {
  log: string;
  region: string | undefined;
  /** Places of the log present in the input. */
  events: number;
  /** Events whose content matches their hash and that a trusted checkpoint vouches for. */
  verified: number;
  firstSeq: number;
  lastSeq: number;
  firstTime: string | undefined;
  lastTime: string | undefined;
  /** Events below this are covered by a trusted checkpoint. */
  coveredUpTo: number;
  checkpoints: { found: number; trusted: number; verdicts: Partial<Record<SignatureVerdict, number>>; keys: string[] };
  findings: Finding[];
  /** The log's event at each place (for prove and query). */
  chosen: Map<number, EventVersion>;
  anchors: Anchor[];
  /** The predecessor this log names in its first checkpoint, when the walk vouched for that checkpoint. */
  predecessor: (Predecessor & { vouched: boolean }) | undefined;
}

function regionOf(log: string): string | undefined {
  return /^ce-audit-gateway\/([a-z]{2}-[a-z]+)\//.exec(log)?.[1];
}

function idOf(v: EventVersion): string | undefined {
  return v.id;
}

function timeOf(v: EventVersion | undefined): string | undefined {
  return v?.eventTime;
}

interface CheckpointVerdict {
  anchor: Anchor | undefined;
  verdict: SignatureVerdict | undefined;
  keyLabels: string[];
}

function checkCheckpoint(log: string, v: EventVersion, o: VerifyOptions, findings: Finding[]): CheckpointVerdict {
  const at = { seqs: [v.seq], id: idOf(v), sources: v.sources };
  const none: CheckpointVerdict = { anchor: undefined, verdict: undefined, keyLabels: [] };
  if (!v.checkpoint) return none;
  if ('problem' in v.checkpoint) {
    findings.push(problem('BAD_CHECKPOINT', `checkpoint at seq ${v.seq}: ${v.checkpoint.problem}`, at));
    return none;
  }
  const { fields } = v.checkpoint;
  let parsed: ReturnType<typeof parseCheckpointBody>;
  let noteParsed: ReturnType<typeof parseNote>;
  try {
    noteParsed = parseNote(fields.note);
    parsed = parseCheckpointBody(noteParsed.body);
  } catch (err) {
    findings.push(problem('BAD_CHECKPOINT', `checkpoint at seq ${v.seq}: its note is not a checkpoint (${(err as Error).message})`, at));
    return none;
  }
  const bad = (why: string): CheckpointVerdict => {
    findings.push(problem('BAD_CHECKPOINT', `checkpoint at seq ${v.seq}: ${why}`, at));
    return none;
  };
  if (parsed.origin !== log) return bad(`its note is for log ${parsed.origin}, not this one`);
  if (parsed.size !== v.seq)
    return bad(`it signs a tree of ${parsed.size} events but sits at seq ${v.seq} (a checkpoint is the event after those it covers)`);
  if (fields.size !== parsed.size || fields.root !== parsed.root.toString('base64'))
    return bad('its size or root differ from its signed note');
  const check = checkSignatures(noteParsed, o.keys);
  const labels = [...check.verifiedBy.map((k) => k.source), ...check.unknown, ...check.failed];
  if (check.verdict === 'bad-signature') {
    findings.push(problem('BAD_SIGNATURE', `checkpoint at seq ${v.seq}: the signature of ${check.failed.join(', ')} does not verify`, at));
  } else if (check.verdict === 'unknown-key' && o.keys.length > 0) {
    findings.push(
      problem(
        'UNKNOWN_KEY',
        `checkpoint at seq ${v.seq} is signed only by ${check.unknown.join(', ')}, not by a key given with --public-key`,
        at,
      ),
    );
  }
  const frontierHashes = fields.frontier.map((h) => decodeBase64(h));
  let frontier: Frontier | undefined;
  try {
    if (frontierHashes.every((h): h is Buffer => h !== undefined)) frontier = Frontier.fromHashes(parsed.size, frontierHashes);
  } catch {
    frontier = undefined;
  }
  if (!frontier || !frontier.root().equals(parsed.root)) {
    findings.push(problem('ROOT_MISMATCH', `checkpoint at seq ${v.seq}: its frontier does not fold to its signed root`, at));
    return { anchor: undefined, verdict: check.verdict, keyLabels: labels };
  }
  if (parsed.size > 0) {
    const prev = v.block.prev === null ? undefined : decodeBase64(v.block.prev);
    const proof = fields.lastProof.map((h) => decodeBase64(h));
    if (
      !prev ||
      !proof.every((h): h is Buffer => h !== undefined) ||
      !verifyInclusion(prev, parsed.size - 1, parsed.size, proof, parsed.root)
    ) {
      findings.push(
        problem(
          'ROOT_MISMATCH',
          `checkpoint at seq ${v.seq}: the event before it (its prev) is not the one its signed root covers: the events before it were rewritten`,
          at,
        ),
      );
      return { anchor: undefined, verdict: check.verdict, keyLabels: labels };
    }
  }
  const acceptable =
    check.verdict === 'verified' ||
    (check.verdict === 'unsigned' && (o.allowUnsigned || o.keys.length === 0)) ||
    (check.verdict === 'unknown-key' && o.keys.length === 0);
  const anchor: Anchor | undefined = acceptable
    ? { seq: v.seq, size: parsed.size, root: parsed.root, prevHash: v.block.prev, frontier, version: v, fields, verdict: check.verdict }
    : undefined;
  return { anchor, verdict: check.verdict, keyLabels: labels };
}

export function verifyLog(
  log: string,
  bySeq: ReadonlyMap<number, EventVersion[]>,
  o: VerifyOptions,
  outside: readonly OutsideAnchor[] = [],
): LogReport {
  const findings: Finding[] = [];
  const anchors: Anchor[] = [];
  const verdicts: Partial<Record<SignatureVerdict, number>> = {};
  const keyLabels = new Set<string>();
  let found = 0;
  const unsignedSeqs: number[] = [];
  const uncheckedSeqs: number[] = [];
  for (const versions of bySeq.values()) {
    for (const v of versions) {
      if (!v.checkpoint) continue;
      found++;
      const c = checkCheckpoint(log, v, o, findings);
      if (c.verdict) verdicts[c.verdict] = (verdicts[c.verdict] ?? 0) + 1;
      for (const l of c.keyLabels) keyLabels.add(l);
      if (c.verdict === 'unsigned' && !o.allowUnsigned) unsignedSeqs.push(v.seq);
      if (c.verdict === 'unknown-key' && o.keys.length === 0) uncheckedSeqs.push(v.seq);
      if (c.anchor) anchors.push(c.anchor);
    }
  }
  if (unsignedSeqs.length > 0) {
    findings.push(
      problem(
        'UNSIGNED',
        `${unsignedSeqs.length} checkpoint(s) carry no signature (--allow-unsigned accepts a trail written without a key)`,
        {
          seqs: ranges(unsignedSeqs),
        },
      ),
    );
  }
  if (uncheckedSeqs.length > 0) {
    findings.push(
      problem(
        'NOT_CHECKED',
        `${uncheckedSeqs.length} checkpoint(s) are signed (${[...keyLabels].join(', ')}), but no --public-key was given to check them`,
        {
          seqs: ranges(uncheckedSeqs),
        },
      ),
    );
  }
  anchors.sort((a, b) => a.size - b.size);

  // Anchors that disagree about the same tree are a fork.
  const auth = new Map<number, { hash: string | null; by: string }>();
  const vouch = (seq: number, hash: string | null, by: string): void => {
    const known = auth.get(seq);
    if (known && known.hash !== hash) {
      findings.push(
        problem('FORK', `${known.by} and ${by} say different events are the log's event ${seq}: two histories were signed`, {
          seqs: [seq],
        }),
      );
      return;
    }
    auth.set(seq, known ?? { hash, by });
  };
  for (let i = 1; i < anchors.length; i++) {
    const a = anchors[i - 1] as Anchor;
    const b = anchors[i] as Anchor;
    if (a.size === b.size && !a.root.equals(b.root)) {
      findings.push(
        problem('FORK', `two checkpoints of ${a.size} events have different roots: two histories were signed`, { seqs: [a.seq] }),
      );
    }
  }
  for (const a of anchors) if (a.size > 0) vouch(a.size - 1, a.prevHash, `the checkpoint at seq ${a.seq}`);
  for (const x of outside) if (x.size > 0) vouch(x.size - 1, x.hash, x.by);

  // The walk.
  const byHash = new Map<string, EventVersion[]>();
  let minSeq = Infinity;
  let maxSeq = -1;
  for (const [seq, versions] of bySeq) {
    minSeq = Math.min(minSeq, seq);
    maxSeq = Math.max(maxSeq, seq);
    for (const v of versions) {
      const same = byHash.get(v.block.hash);
      if (same) same.push(v);
      else byHash.set(v.block.hash, [v]);
    }
  }
  for (const seq of auth.keys()) maxSeq = Math.max(maxSeq, seq);
  const chosen = new Map<number, EventVersion>();
  const vouched = new Set<number>();
  const missing: number[] = [];
  const altered = new Map<EventVersion, { why: string; fields: string[] }>();
  const movedFrom = new Map<EventVersion, number>();
  const alter = (v: EventVersion, why: string, fields: string[] = []): void => {
    if (!altered.has(v)) altered.set(v, { why, fields });
  };
  const contentWhy = (v: EventVersion): string =>
    v.contentProblem ? `its content is not canonical JSON (${v.contentProblem})` : 'its content does not match its hash';
  let expected: { hash: string; vouched: boolean; from: string } | undefined;
  for (let seq = maxSeq; seq >= minSeq && seq >= 0; seq--) {
    const a = auth.get(seq);
    if (a && a.hash !== null) {
      if (expected && expected.hash !== a.hash) {
        if (expected.vouched) {
          findings.push(problem('FORK', `${a.by} and ${expected.from} name different events as the log's event ${seq}`, { seqs: [seq] }));
        } else {
          findings.push(
            problem('BROKEN_CHAIN', `${expected.from} names a predecessor that is not the event ${a.by} vouches for at seq ${seq}`, {
              seqs: [seq, seq + 1],
            }),
          );
        }
      }
      expected = { hash: a.hash, vouched: true, from: a.by };
    }
    const versions = bySeq.get(seq) ?? [];
    if (versions.length === 0) {
      const moved = expected ? byHash.get(expected.hash)?.find((v) => v.seq !== seq) : undefined;
      if (moved && expected) {
        movedFrom.set(moved, seq);
        chosen.set(seq, moved);
      } else missing.push(seq);
      expected = undefined;
      continue;
    }
    let pick: EventVersion | undefined;
    let isVouched = false;
    if (expected) {
      const exp = expected;
      const matching = versions.filter((v) => v.block.hash === exp.hash);
      const good = matching.find((v) => v.intact);
      pick = good ?? matching[0];
      if (pick) {
        isVouched = exp.vouched;
        for (const v of matching) if (v !== good) alter(v, contentWhy(v), good ? versionDifferences(good, v) : []);
        for (const v of versions) {
          if (v.block.hash === exp.hash) continue;
          if (v.intact) {
            findings.push(
              problem('FORGED', `an event claims seq ${seq}, but ${exp.from} names another one there`, {
                seqs: [seq],
                id: idOf(v),
                sources: v.sources,
              }),
            );
          } else alter(v, contentWhy(v), good ? versionDifferences(good, v) : []);
        }
      } else if (exp.vouched) {
        for (const v of versions) {
          alter(
            v,
            v.intact
              ? `it is not the event the log holds at seq ${seq} (${exp.from} names another): changed, and its hash recomputed`
              : contentWhy(v),
          );
        }
      } else {
        findings.push(problem('BROKEN_CHAIN', `${exp.from} names a predecessor that no copy of event ${seq} is`, { seqs: [seq, seq + 1] }));
        for (const v of versions) if (!v.intact) alter(v, contentWhy(v));
        pick = versions.length === 1 && versions[0]?.intact ? versions[0] : undefined;
      }
    } else {
      const intact = versions.filter((v) => v.intact);
      for (const v of versions) {
        if (v.intact) continue;
        const twin = intact.find((i) => i.block.hash === v.block.hash);
        alter(v, contentWhy(v), twin ? versionDifferences(twin, v) : []);
      }
      if (intact.length > 1) {
        findings.push(
          problem(
            'FORK',
            `${intact.length} different well-formed events claim seq ${seq}, and nothing in the input says which one the log holds`,
            {
              seqs: [seq],
              sources: intact.flatMap((v) => v.sources),
            },
          ),
        );
      }
      pick = intact.length === 1 ? intact[0] : intact.length === 0 ? versions[0] : undefined;
    }
    for (const v of versions) {
      if (v.viewDiffers.length > 0) {
        findings.push(
          problem('VIEW_ALTERED', `event ${seq}: the export shows other values beside _line than the event in it`, {
            seqs: [seq],
            id: idOf(v),
            sources: v.sources,
            fields: v.viewDiffers,
          }),
        );
      }
    }
    if (!pick) {
      expected = undefined;
      continue;
    }
    chosen.set(seq, pick);
    if (isVouched && pick.intact) vouched.add(seq);
    if (pick.intact && (seq === 0) !== (pick.block.prev === null)) {
      findings.push(
        problem('BROKEN_CHAIN', `event ${seq} has ${seq === 0 ? 'a predecessor hash, but it is the first event' : 'no predecessor hash'}`, {
          seqs: [seq],
        }),
      );
    }
    expected = pick.intact && pick.block.prev !== null ? { hash: pick.block.prev, vouched: isVouched, from: `event ${seq}` } : undefined;
  }
  for (const [v, a] of altered) {
    const from = movedFrom.get(v);
    const why = from === undefined ? a.why : `its sequence number was changed: it claims seq ${v.seq} but is the log's event ${from}`;
    findings.push(
      problem('ALTERED', `event ${from ?? v.seq}: ${why}`, {
        seqs: from === undefined ? [v.seq] : [from, v.seq],
        id: idOf(v),
        sources: v.sources,
        ...(a.fields.length > 0 ? { fields: a.fields } : {}),
      }),
    );
  }

  // Each checkpoint names the one before it: that must be the log's newest checkpoint before it.
  let previousCheckpoint: EventVersion | undefined;
  for (const seq of [...chosen.keys()].sort((a, b) => a - b)) {
    const v = chosen.get(seq) as EventVersion;
    const fields = v.checkpoint && 'fields' in v.checkpoint ? v.checkpoint.fields : undefined;
    if (!fields) continue;
    const named = fields.previous;
    const before = previousCheckpoint;
    previousCheckpoint = v;
    if (named === null && before === undefined) continue;
    if (named !== null && !chosen.has(named.seq) && (before === undefined || before.seq < named.seq)) continue; // not in the input
    if (named === null || before === undefined || named.seq !== before.seq || named.hash !== before.block.hash) {
      findings.push(
        problem(
          'BAD_CHECKPOINT',
          `checkpoint at seq ${seq} names ${named ? `the checkpoint at seq ${named.seq}` : 'no checkpoint'} as the one before it, but the log's is ${before ? `at seq ${before.seq}` : 'none'}`,
          { seqs: [seq], id: idOf(v), sources: v.sources },
        ),
      );
    }
  }

  // Coverage: gaps below the newest trusted checkpoint are missing events.
  let coveredUpTo = 0;
  for (const a of anchors) coveredUpTo = Math.max(coveredUpTo, a.size);
  for (const x of outside) coveredUpTo = Math.max(coveredUpTo, x.size);
  let firstSeq = Infinity;
  let lastSeq = -1;
  for (const seq of chosen.keys()) {
    firstSeq = Math.min(firstSeq, seq);
    lastSeq = Math.max(lastSeq, seq);
  }
  const gaps = ranges(missing.filter((s) => s >= firstSeq && s < coveredUpTo));
  const newestAnchor = anchors[anchors.length - 1];
  for (const g of gaps) {
    const count = g[1] - g[0] + 1;
    if (g[1] === coveredUpTo - 1) {
      const by =
        newestAnchor && newestAnchor.size === coveredUpTo ? `the checkpoint at seq ${newestAnchor.seq}` : 'the log that follows this one';
      findings.push(problem('TRUNCATED', `the newest ${count} event(s) before ${by} are missing: seq ${rangeText(g)}`, { seqs: [g] }));
    } else {
      findings.push(problem('MISSING', `${count} event(s) missing: seq ${rangeText(g)}`, { seqs: [g] }));
    }
  }
  if (gaps.length > 1)
    findings.push(problem('MISSING', `${gaps.length} gaps in all, ${gaps.reduce((n, g) => n + g[1] - g[0] + 1, 0)} events`));

  // Roots, recomputed where the input holds the events (or an earlier checkpoint's frontier and the events after it).
  // A matching root vouches for every event under it.
  let tree: Frontier | undefined = chosen.has(0) ? Frontier.EMPTY : undefined;
  let treeFrom = 0;
  let notRecomputed = 0;
  for (const a of anchors) {
    if (tree && tree.size > a.size) tree = undefined;
    while (tree && tree.size < a.size) {
      const v = chosen.get(tree.size);
      const leaf = v ? decodeBase64(v.block.hash) : undefined;
      tree = leaf ? tree.append(leaf) : undefined;
    }
    if (tree && tree.size === a.size) {
      if (tree.root().equals(a.root)) {
        for (let seq = treeFrom; seq < a.size; seq++) if (chosen.get(seq)?.intact) vouched.add(seq);
      } else {
        findings.push(
          problem('ROOT_MISMATCH', `checkpoint at seq ${a.seq}: the ${a.size} events before it do not give its signed root`, {
            seqs: [a.seq],
            id: idOf(a.version),
            sources: a.version.sources,
          }),
        );
      }
    } else notRecomputed++;
    tree = a.frontier;
    treeFrom = a.size;
  }

  // What the trail covers.
  const uncovered = [...chosen.entries()].filter(([s, v]) => s >= coveredUpTo && !v.checkpoint).map(([s]) => s);
  if (uncovered.length > 0) {
    findings.push(
      note(
        'UNCOVERED',
        `${uncovered.length} event(s) after the newest trusted checkpoint are chained but not yet covered: seq ${ranges(uncovered).map(rangeText).join(', ')}`,
        {
          seqs: ranges(uncovered),
        },
      ),
    );
  }
  const unanchored = [...chosen.entries()].filter(([s, v]) => s < coveredUpTo && v.intact && !vouched.has(s)).map(([s]) => s);
  if (unanchored.length > 0) {
    findings.push(
      note(
        'UNANCHORED',
        `${unanchored.length} event(s) could not be tied to a checkpoint (a gap above them): seq ${ranges(unanchored).map(rangeText).join(', ')}`,
        {
          seqs: ranges(unanchored),
        },
      ),
    );
  }
  if (firstSeq > 0 && firstSeq !== Infinity)
    findings.push(note('WINDOW', `the input starts at the log's event ${firstSeq}; earlier events are not in it`));
  if (notRecomputed > 0)
    findings.push(
      note('ROOT_NOT_RECOMPUTED', `${notRecomputed} checkpoint root(s) not recomputed: the events before them are not all in the input`),
    );
  for (const a of anchors) {
    if (a.fields.reason === 'recovered') {
      findings.push(
        note(
          'RESTART',
          `the gateway restarted without a shutdown checkpoint before ${timeOf(a.version) ?? `seq ${a.seq}`}; the log continued at seq ${a.seq}`,
          { seqs: [a.seq] },
        ),
      );
    }
  }
  const first = chosen.get(0);
  let predecessor: LogReport['predecessor'];
  const firstFields = first?.checkpoint && 'fields' in first.checkpoint ? first.checkpoint.fields : undefined;
  if (first && firstFields?.predecessor) {
    predecessor = { ...firstFields.predecessor, vouched: vouched.has(0) };
    findings.push(
      note(
        'NEW_LOG',
        `this log follows ${firstFields.predecessor.log} (${firstFields.predecessor.size} events): ${firstFields.predecessor.why}`,
      ),
    );
  }
  const verified = [...chosen.entries()].filter(([s, v]) => v.intact && vouched.has(s) && !altered.has(v)).length;
  return {
    log,
    region: regionOf(log),
    events: chosen.size,
    verified,
    firstSeq: firstSeq === Infinity ? -1 : firstSeq,
    lastSeq,
    firstTime: timeOf(chosen.get(firstSeq)),
    lastTime: timeOf(chosen.get(lastSeq)),
    coveredUpTo,
    checkpoints: { found, trusted: anchors.length, verdicts, keys: [...keyLabels] },
    findings,
    chosen,
    anchors,
    predecessor,
  };
}
