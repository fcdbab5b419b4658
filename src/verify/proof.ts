/**
 * Inclusion proofs of one event, in the C2SP tlog-proof form (c2sp.org/tlog-proof):
 *
 *   c2sp.org/tlog-proof@v1
 *   index <the event's seq>
 *   <base64 hash>          one line per hash of the RFC 9162 inclusion proof
 *   (blank line)
 *   <the checkpoint's signed note>
 *
 * `ce-audit prove` writes one from a trail; `ce-audit verify-proof` checks it with nothing but the proof, the event
 * and the public key: the event's hash is recomputed from its content, proved into the checkpoint's root, and the
 * checkpoint's signature checked.
 */
import { readChainBlock, recomputeEventHash } from '../integrity/chain-block';
import { Frontier, inclusionProof, leafRangeHash, verifyInclusion } from '../integrity/merkle';
import { checkSignatures, decodeBase64, parseCheckpointBody, parseNote, type TrustedKey } from '../integrity/note';
import type { EventVersion } from './trail';
import type { Anchor, LogReport } from './verify-log';

export const PROOF_HEADER = 'c2sp.org/tlog-proof@v1';

export class ProofError extends Error {
  override readonly name = 'ProofError';
}

function leavesOf(report: LogReport, from: number, to: number): Buffer[] | undefined {
  const out: Buffer[] = [];
  for (let seq = from; seq < to; seq++) {
    const v = report.chosen.get(seq);
    const leaf = v && decodeBase64(v.block.hash);
    if (!leaf) return undefined;
    out.push(leaf);
  }
  return out;
}

/** The proof of `v` against the newest trusted checkpoint that covers it and whose tree the trail holds enough of. */
export function buildProof(report: LogReport, v: EventVersion): { text: string; anchor: Anchor } {
  if (!v.intact) throw new ProofError(`event ${v.seq} does not match its own hash: there is nothing to prove`);
  if (report.chosen.get(v.seq) !== v)
    throw new ProofError(`event ${v.seq} is not the event the log holds at that place (see ce-audit verify)`);
  const leaf = decodeBase64(v.block.hash) as Buffer;
  const covering = report.anchors.filter((a) => a.size > v.seq).sort((a, b) => b.size - a.size);
  if (covering.length === 0)
    throw new ProofError(
      `no trusted checkpoint in the input covers event ${v.seq} yet (the newest covers up to ${report.coveredUpTo - 1})`,
    );
  const bases = [undefined, ...report.anchors.filter((b) => b.size <= v.seq).sort((a, b) => b.size - a.size)];
  for (const a of covering) {
    for (const b of bases) {
      const from = b?.size ?? 0;
      const leaves = leavesOf(report, from, a.size);
      if (!leaves) continue;
      const proof = inclusionProof(v.seq, a.size, leafRangeHash(leaves, b?.frontier ?? Frontier.EMPTY));
      if (!verifyInclusion(leaf, v.seq, a.size, proof, a.root))
        throw new ProofError(`the events of the input do not give the root of the checkpoint at seq ${a.seq}`);
      const text = `${PROOF_HEADER}\nindex ${v.seq}\n${proof.map((h) => `${h.toString('base64')}\n`).join('')}\n${a.fields.note}`;
      return { text, anchor: a };
    }
  }
  throw new ProofError(
    `the input lacks events between a checkpoint and event ${v.seq}: give the whole log, or at least from the checkpoint before it`,
  );
}

export interface ParsedProof {
  index: number;
  hashes: Buffer[];
  note: string;
}

export function parseProof(text: string): ParsedProof {
  const normal = text.replace(/\r\n/g, '\n');
  const split = normal.indexOf('\n\n');
  if (split < 0) throw new ProofError('not a tlog proof: no blank line before the checkpoint');
  const head = normal.slice(0, split).split('\n');
  if (head[0] !== PROOF_HEADER) throw new ProofError(`not a tlog proof: the first line is not ${PROOF_HEADER}`);
  let i = 1;
  if (head[i]?.startsWith('extra ')) i++;
  const index = /^index (0|[1-9][0-9]*)$/.exec(head[i] ?? '')?.[1];
  if (index === undefined) throw new ProofError('not a tlog proof: no "index N" line');
  const hashes = head.slice(i + 1).map((line) => {
    const h = decodeBase64(line);
    if (h?.length !== 32) throw new ProofError(`not a tlog proof: ${JSON.stringify(line.slice(0, 60))} is not a base64 hash`);
    return h;
  });
  return { index: Number(index), hashes, note: normal.slice(split + 2) };
}

export interface ProofCheck {
  ok: boolean;
  /** What was established, or why not. */
  lines: string[];
}

/** Checks a proof with only the proof, the event (its JSON as any copy holds it) and the trusted keys. */
export function checkProof(proofText: string, eventText: string, keys: readonly TrustedKey[], allowUnsigned: boolean): ProofCheck {
  const lines: string[] = [];
  const fail = (why: string): ProofCheck => ({ ok: false, lines: [...lines, `FAILED: ${why}`] });
  let proof: ParsedProof;
  try {
    proof = parseProof(proofText);
  } catch (err) {
    return fail((err as Error).message);
  }
  let event: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(eventText);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return fail('the event is not a JSON object');
    event = parsed as Record<string, unknown>;
  } catch {
    return fail('the event is not JSON');
  }
  const read = readChainBlock(event);
  if (!read) return fail('the event carries no auditChain block');
  if ('problem' in read) return fail(read.problem);
  const { block } = read;
  let leaf: Buffer;
  try {
    leaf = recomputeEventHash(event, block);
  } catch (err) {
    return fail(`the event is not canonical JSON (${(err as Error).message})`);
  }
  if (leaf.toString('base64') !== block.hash) return fail(`the event's content does not match its hash (it was changed)`);
  lines.push(`event ${typeof event.id === 'string' ? event.id : '(no id)'}: seq ${block.seq} of ${block.log}, content matches its hash`);
  let checkpoint: ReturnType<typeof parseCheckpointBody>;
  let note: ReturnType<typeof parseNote>;
  try {
    note = parseNote(proof.note);
    checkpoint = parseCheckpointBody(note.body);
  } catch (err) {
    return fail(`the proof's checkpoint is not one (${(err as Error).message})`);
  }
  if (checkpoint.origin !== block.log) return fail(`the checkpoint is of log ${checkpoint.origin}, the event of ${block.log}`);
  if (proof.index !== block.seq) return fail(`the proof is for index ${proof.index}, the event is seq ${block.seq}`);
  const sig = checkSignatures(note, keys);
  if (sig.verdict === 'verified')
    lines.push(`checkpoint of ${checkpoint.size} events signed by ${sig.verifiedBy.map((k) => k.source).join(', ')}`);
  else if (sig.verdict === 'unsigned' && allowUnsigned)
    lines.push(`checkpoint of ${checkpoint.size} events, unsigned (accepted: --allow-unsigned)`);
  else if (sig.verdict === 'bad-signature') return fail(`the checkpoint's signature by ${sig.failed.join(', ')} does not verify`);
  else if (sig.verdict === 'unknown-key')
    return fail(`the checkpoint is signed by ${sig.unknown.join(', ')}, not by a key given with --public-key`);
  else return fail('the checkpoint is not signed (--allow-unsigned accepts that)');
  if (!verifyInclusion(leaf, block.seq, checkpoint.size, proof.hashes, checkpoint.root)) {
    return fail(`the inclusion proof does not lead from the event to the checkpoint's root`);
  }
  lines.push(
    `the event is entry ${block.seq} of the ${checkpoint.size} events under the checkpoint's root ${checkpoint.root.toString('base64')}`,
  );
  return { ok: true, lines: [...lines, 'OK: the event is in the log.'] };
}
