/**
 * The RFC 6962 / RFC 9162 Merkle tree over a log's events: leaf hash SHA-256(0x00 || data), interior node
 * SHA-256(0x01 || left || right), the empty tree SHA-256(""), a tree of n leaves split at the largest power of two
 * below n (no duplicated odd nodes). Inclusion and consistency proofs are generated and checked as RFC 9162
 * sections 2.1.3 and 2.1.4 define them. Sizes and indexes are JavaScript numbers (exact up to 2^53).
 */
import { hash } from 'node:crypto';

export const HASH_BYTES = 32;

/** MTH({}): the root of the empty tree. */
export const EMPTY_ROOT: Buffer = hash('sha256', Buffer.alloc(0), 'buffer');

const nodeInput = Buffer.alloc(1 + 2 * HASH_BYTES);
nodeInput[0] = 0x01;

/** HASH(0x01 || left || right). */
export function nodeHash(left: Buffer, right: Buffer): Buffer {
  if (left.length !== HASH_BYTES || right.length !== HASH_BYTES) throw new RangeError('Merkle node children must be 32-byte hashes');
  left.copy(nodeInput, 1);
  right.copy(nodeInput, 1 + HASH_BYTES);
  return hash('sha256', nodeInput, 'buffer');
}

/** HASH(0x00 || data): a leaf. An event's leaf is the UTF-8 of its canonical JSON (see chain-block.ts). */
export function leafHash(data: Buffer | string): Buffer {
  return hash('sha256', typeof data === 'string' ? `\u0000${data}` : Buffer.concat([Buffer.of(0), data]), 'buffer');
}

/** The largest power of two smaller than n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

const isOdd = (x: number): boolean => x % 2 === 1;
/** x >> 1 for any safe integer (bit operators stop at 2^31; plain arithmetic also stays fast inside jest's sandbox). */
const half = (x: number): number => (x - (x % 2)) / 2;

/** RFC 9162's "right-shift both fn and sn equally until either LSB(fn) is set or fn is 0". */
function shiftWhileEven(fn: number, sn: number): [number, number] {
  while (!isOdd(fn) && fn !== 0) {
    fn = half(fn);
    sn = half(sn);
  }
  return [fn, sn];
}

function equalHashes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.equals(b);
}

/** What the proof algorithms need of a hash: combine two nodes, compare two. SHA-256 in production. */
export interface TreeHasher<T> {
  node(left: T, right: T): T;
  equal(a: T, b: T): boolean;
}

export const SHA256_TREE: TreeHasher<Buffer> = { node: nodeHash, equal: equalHashes };

function hashesOnly(proof: readonly Buffer[]): boolean {
  for (let i = 0; i < proof.length; i++) if ((proof[i] as Buffer).length !== HASH_BYTES) return false;
  return true;
}

/** RFC 9162 2.1.3.2: does `proof` show the leaf `leaf` at `index` in the tree of `size` leaves whose root is `root`? */
export function verifyInclusion(leaf: Buffer, index: number, size: number, proof: readonly Buffer[], root: Buffer): boolean {
  return hashesOnly(proof) && verifyInclusionWith(SHA256_TREE, leaf, index, size, proof, root);
}

/** verifyInclusion over any hash (the tests run every index of every size with a cheap one). */
export function verifyInclusionWith<T>(h: TreeHasher<T>, leaf: T, index: number, size: number, proof: readonly T[], root: T): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (let i = 0; i < proof.length; i++) {
    const p = proof[i] as T;
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      r = h.node(p, r);
      if (!isOdd(fn)) [fn, sn] = shiftWhileEven(fn, sn);
    } else {
      r = h.node(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && h.equal(r, root);
}

/**
 * RFC 9162 2.1.4.2: does `proof` show that the tree of `second` leaves (root `secondRoot`) extends the tree of
 * `first` leaves (root `firstRoot`)? An empty tree is a prefix of every tree (empty proof).
 */
export function verifyConsistency(first: number, second: number, proof: readonly Buffer[], firstRoot: Buffer, secondRoot: Buffer): boolean {
  if (first === 0 && first !== second) return proof.length === 0 && equalHashes(firstRoot, EMPTY_ROOT);
  return hashesOnly(proof) && verifyConsistencyWith(SHA256_TREE, first, second, proof, firstRoot, secondRoot);
}

/** verifyConsistency over any hash. Sizes from 1 (the empty tree is handled by verifyConsistency). */
export function verifyConsistencyWith<T>(
  h: TreeHasher<T>,
  first: number,
  second: number,
  proof: readonly T[],
  firstRoot: T,
  secondRoot: T,
): boolean {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 1 || first > second) return false;
  if (first === second) return proof.length === 0 && h.equal(firstRoot, secondRoot);
  const path = isPowerOfTwo(first) ? [firstRoot].concat(proof) : proof.slice();
  if (path.length === 0) return false;
  let fn = first - 1;
  let sn = second - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0] as T;
  let sr = path[0] as T;
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as T;
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = h.node(c, fr);
      sr = h.node(c, sr);
      if (!isOdd(fn)) [fn, sn] = shiftWhileEven(fn, sn);
    } else {
      sr = h.node(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && h.equal(fr, firstRoot) && h.equal(sr, secondRoot);
}

function isPowerOfTwo(x: number): boolean {
  if (x < 1) return false;
  while (x % 2 === 0) x /= 2;
  return x === 1;
}

/** The root of the subtree of leaves [start, end): MTH(D[start:end]). */
export type RangeHash<T = Buffer> = (start: number, end: number) => T;

/** RFC 9162 2.1.3.1 PATH(index, D[0:size]): the inclusion proof of one leaf. */
export function inclusionProof<T>(index: number, size: number, rangeHash: RangeHash<T>): T[] {
  if (!(index >= 0 && index < size)) throw new RangeError(`leaf ${index} is not in a tree of ${size}`);
  const proof: T[] = [];
  // PATH is defined recursively with the deepest node first; walk down and collect, then reverse.
  let start = 0;
  let end = size;
  let m = index;
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (m < k) {
      proof.push(rangeHash(start + k, end));
      end = start + k;
    } else {
      proof.push(rangeHash(start, start + k));
      start += k;
      m -= k;
    }
  }
  return proof.reverse();
}

/** RFC 9162 2.1.4.1 PROOF(first, D[0:second]): the consistency proof between two sizes of the tree. */
export function consistencyProof<T>(first: number, second: number, rangeHash: RangeHash<T>): T[] {
  if (!(first >= 0 && first <= second)) throw new RangeError(`no consistency proof from ${first} to ${second}`);
  if (first === 0 || first === second) return [];
  const proof: T[] = [];
  let start = 0;
  let end = second;
  let m = first;
  let complete = true;
  for (;;) {
    const n = end - start;
    if (m === n) {
      if (!complete) proof.push(rangeHash(start, end));
      break;
    }
    const k = splitPoint(n);
    if (m <= k) {
      proof.push(rangeHash(start + k, end));
      end = start + k;
    } else {
      proof.push(rangeHash(start, start + k));
      start += k;
      m -= k;
      complete = false;
    }
  }
  return proof.reverse();
}

/** Subtree roots of a contiguous run of leaves, memoised: proofs over an array of leaf hashes. */
export function leafRangeHash(leaves: readonly Buffer[], base: Frontier = Frontier.EMPTY): RangeHash {
  const memo = new Map<number | string, Buffer>();
  // A number while it is exact (ranges within the first 2^26 leaves), a string beyond.
  const keyOf = (start: number, end: number): number | string => (end < 2 ** 26 ? start * 2 ** 26 + end : `${start}:${end}`);
  const sizes = base.subtreeSizes();
  let at = 0;
  for (const [i, h] of base.hashes().entries()) {
    const size = sizes[i] as number;
    memo.set(keyOf(at, at + size), h);
    at += size;
  }
  const rangeHash = (start: number, end: number): Buffer => {
    const key = keyOf(start, end);
    const known = memo.get(key);
    if (known) return known;
    if (end <= base.size) throw new RangeError(`leaves ${start}..${end - 1} are only known through the checkpoint's frontier`);
    let h: Buffer;
    if (end - start === 1) {
      const leaf = leaves[start - base.size];
      if (!leaf) throw new RangeError(`leaf ${start} is missing`);
      h = leaf;
    } else {
      const k = splitPoint(end - start);
      h = nodeHash(rangeHash(start, start + k), rangeHash(start + k, end));
    }
    memo.set(key, h);
    return h;
  };
  return rangeHash;
}

/**
 * HASH(0x01 || left || right) over base64 hashes, giving base64: the frontier's form. The gateway hashes an event
 * or two per call this way without allocating a Buffer for each (small native-backed buffers are costly to collect).
 */
function nodeHash64(left: string, right: string): string {
  nodeInput.write(left, 1, HASH_BYTES, 'base64');
  nodeInput.write(right, 1 + HASH_BYTES, HASH_BYTES, 'base64');
  return hash('sha256', nodeInput, 'base64');
}

/** An event's leaf hash as base64 (see leafHash). */
export function leafHash64(data: string): string {
  return hash('sha256', `\u0000${data}`, 'base64');
}

const b64 = (h: Buffer | string): string => (typeof h === 'string' ? h : h.toString('base64'));
const bytes = (h: string): Buffer => Buffer.from(h, 'base64');

interface FrontierNode {
  /** base64 */
  readonly hash: string;
  /** Leaves under it: a power of two. */
  readonly size: number;
  /** The next larger subtree to its left. */
  readonly below: FrontierNode | undefined;
}

/**
 * The compact range [0, size) of a tree: the roots of its perfect subtrees, one per set bit of `size`, largest
 * (leftmost) first. Enough to compute the root and to keep appending, in log2(size) hashes. Immutable: append()
 * returns a new frontier sharing the old one's nodes, so keeping a snapshot costs nothing. Hashes are kept in base64
 * (what events and checkpoints carry); methods take and give Buffers or base64 (the ...64 ones).
 */
export class Frontier {
  static readonly EMPTY = new Frontier(0, undefined, []);

  private constructor(
    readonly size: number,
    private readonly top: FrontierNode | undefined,
    /** Inclusion proof of the newest leaf inside the smallest subtree (bottom-up); undefined when not known. */
    private readonly lastInner: readonly string[] | undefined,
  ) {}

  /** From subtree roots, largest first (as hashes() returns them). `lastInner`: see lastLeafProof(). */
  static fromHashes(size: number, hashes: ReadonlyArray<Buffer | string>, lastInner?: ReadonlyArray<Buffer | string>): Frontier {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bad tree size ${size}`);
    const sizes: number[] = [];
    for (let rest = size, bit = 1; rest > 0; bit *= 2) {
      if (rest % 2 === 1) sizes.unshift(bit);
      rest = Math.floor(rest / 2);
    }
    if (sizes.length !== hashes.length) throw new RangeError(`a tree of ${size} leaves has ${sizes.length} subtrees, not ${hashes.length}`);
    const check = (h: Buffer | string): string => {
      if ((typeof h === 'string' ? bytes(h) : h).length !== HASH_BYTES) throw new RangeError('frontier hashes must be 32 bytes');
      return b64(h);
    };
    let top: FrontierNode | undefined;
    for (let i = 0; i < hashes.length; i++) top = { hash: check(hashes[i] as Buffer | string), size: sizes[i] as number, below: top };
    return new Frontier(size, top, lastInner?.map(check));
  }

  /** One more leaf (its hash, as a Buffer or base64). */
  append(leaf: Buffer | string): Frontier {
    let node: FrontierNode = { hash: b64(leaf), size: 1, below: this.top };
    let inner: string[] | undefined;
    while (node.below !== undefined && node.below.size === node.size) {
      (inner ??= []).push(node.below.hash);
      node = { hash: nodeHash64(node.below.hash, node.hash), size: node.size * 2, below: node.below.below };
    }
    return new Frontier(this.size + 1, node, inner ?? NO_HASHES);
  }

  /** MTH(D[0:size]). */
  root(): Buffer {
    return bytes(this.root64());
  }

  root64(): string {
    if (!this.top) return EMPTY_ROOT.toString('base64');
    let r = this.top.hash;
    for (let n = this.top.below; n; n = n.below) r = nodeHash64(n.hash, r);
    return r;
  }

  /** Subtree roots, largest first. */
  hashes(): Buffer[] {
    return this.hashes64().map(bytes);
  }

  hashes64(): string[] {
    const out: string[] = [];
    for (let n = this.top; n; n = n.below) out.unshift(n.hash);
    return out;
  }

  subtreeSizes(): number[] {
    const out: number[] = [];
    for (let n = this.top; n; n = n.below) out.unshift(n.size);
    return out;
  }

  /** The newest leaf's proof inside its subtree, base64 (what fromHashes() needs to restore lastLeafProof()). */
  lastInnerProof64(): readonly string[] | undefined {
    return this.lastInner;
  }

  /**
   * The inclusion proof of the newest leaf (index size - 1) in this tree: its path inside the smallest subtree, then
   * the other subtrees from the next smallest to the largest. Undefined for the empty tree, or when this frontier
   * was restored without it.
   */
  lastLeafProof(): Buffer[] | undefined {
    return this.lastLeafProof64()?.map(bytes);
  }

  lastLeafProof64(): string[] | undefined {
    if (!this.top || !this.lastInner) return undefined;
    const proof = [...this.lastInner];
    for (let n = this.top.below; n; n = n.below) proof.push(n.hash);
    return proof;
  }
}

const NO_HASHES: readonly string[] = Object.freeze([]);

/** MTH over leaf hashes. */
export function rootOf(leaves: readonly Buffer[], base: Frontier = Frontier.EMPTY): Buffer {
  let f = base;
  for (const leaf of leaves) f = f.append(leaf);
  return f.root();
}
