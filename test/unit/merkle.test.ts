/**
 * The Merkle tree against RFC 6962's test vectors and against the RFC 9162 definitions (MTH, PATH, PROOF) written
 * out below as the RFC states them, recursively: every index of every tree size up to 2048 and every pair of sizes up
 * to 300 (with a cheap 32-bit stand-in for SHA-256, so the sweep takes seconds; the algorithms are the same code),
 * every index of every size up to 300 with SHA-256, and random indexes and sizes up to 5000 (fast-check). A verifier
 * that skips a step must fail: proofs with one bit flipped, one hash too many or too few, another index, size or root
 * are all refused.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  consistencyProof,
  EMPTY_ROOT,
  Frontier,
  inclusionProof,
  leafHash,
  leafRangeHash,
  nodeHash,
  rootOf,
  verifyConsistency,
  verifyConsistencyWith,
  verifyInclusion,
  verifyInclusionWith,
  type TreeHasher,
} from '../../src/integrity/merkle';

const sha256 = (...parts: Buffer[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

// --- RFC 9162 section 2.1, literally (independent of src/) ------------------------------------------------------

const refLeaf = (d: Buffer): Buffer => sha256(Buffer.of(0), d);
const refNode = (l: Buffer, r: Buffer): Buffer => sha256(Buffer.of(1), l, r);
/** The largest power of two smaller than n. */
const k = (n: number): number => {
  let p = 1;
  while (p * 2 < n) p *= 2;
  return p;
};

function append<T>(list: T[], item: T): T[] {
  list.push(item);
  return list;
}

/** MTH over leaf hashes D[a:b] (memoised: a subtree's root depends only on its leaves), PATH and PROOF. */
function makeRef<T>(leafHashes: readonly T[], node: (l: T, r: T) => T, empty: T) {
  const memo = new Map<number, T>();
  const mth = (a: number, b: number): T => {
    if (b - a === 0) return empty;
    if (b - a === 1) return leafHashes[a] as T;
    const key = a * 65536 + b;
    let h = memo.get(key);
    if (h === undefined) {
      const split = a + k(b - a);
      h = node(mth(a, split), mth(split, b));
      memo.set(key, h);
    }
    return h;
  };
  /** PATH(m, D[a:b]) */
  const path = (m: number, a: number, b: number): T[] => {
    const n = b - a;
    if (n === 1) return [];
    const split = k(n);
    // (push, not spread: iteration is slow inside jest's sandbox)
    return m < split ? append(path(m, a, a + split), mth(a + split, b)) : append(path(m - split, a + split, b), mth(a, a + split));
  };
  /** SUBPROOF(m, D[a:b], flag) */
  const subproof = (m: number, a: number, b: number, flag: boolean): T[] => {
    const n = b - a;
    if (m === n) return flag ? [] : [mth(a, b)];
    const split = k(n);
    return m <= split
      ? append(subproof(m, a, a + split, flag), mth(a + split, b))
      : append(subproof(m - split, a + split, b, false), mth(a, a + split));
  };
  return { mth, path, proof: (m: number, n: number): T[] => (m === 0 || m === n ? [] : subproof(m, 0, n, true)) };
}

/** A cheap, order-sensitive 32-bit stand-in for SHA-256 (murmur3's finaliser), for the exhaustive sweeps. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
// Node hashes mix with plain (exact) arithmetic modulo a prime below 2^32: Math.imul is slow inside jest's sandbox.
const P = 4294967291;
const MIX: TreeHasher<number> = { node: (l, r) => (((l * 1000003) % P) * 65599 + r * 7919 + 12345) % P, equal: (a, b) => a === b };

const hex = (bs: readonly Buffer[]): string[] => bs.map((b) => b.toString('hex'));
const fromHex = (h: string): Buffer => Buffer.from(h, 'hex');

// --- RFC 6962 test vectors (the Certificate Transparency reference implementation's) -----------------------------

const CT_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(fromHex);
const CT_ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const CT_INCLUSION: Array<{ index: number; size: number; path: string[] }> = [
  { index: 0, size: 1, path: [] },
  {
    index: 0,
    size: 8,
    path: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    index: 5,
    size: 8,
    path: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  { index: 2, size: 3, path: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  {
    index: 1,
    size: 5,
    path: [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
];
const CT_CONSISTENCY: Array<{ first: number; second: number; path: string[] }> = [
  { first: 1, second: 1, path: [] },
  {
    first: 1,
    second: 8,
    path: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    first: 6,
    second: 8,
    path: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  {
    first: 2,
    second: 5,
    path: [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
  {
    first: 3,
    second: 7,
    path: [
      '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
      '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
      'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
      '837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e',
    ],
  },
  { first: 4, second: 7, path: ['837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e'] },
  {
    first: 6,
    second: 7,
    path: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];

describe('RFC 6962 test vectors', () => {
  const leaves = CT_LEAVES.map((d) => leafHash(d));
  const range = leafRangeHash(leaves);

  test('leaf and node hashes carry the 0x00 and 0x01 prefixes; the empty tree is SHA-256("")', () => {
    expect(EMPTY_ROOT.toString('hex')).toBe(CT_ROOTS[0]);
    expect(leafHash(Buffer.alloc(0)).toString('hex')).toBe(CT_ROOTS[1]);
    expect(leafHash('').equals(leafHash(Buffer.alloc(0)))).toBe(true);
    expect(nodeHash(leaves[0] as Buffer, leaves[1] as Buffer).toString('hex')).toBe(CT_ROOTS[2]);
    expect(() => nodeHash(Buffer.alloc(31), Buffer.alloc(32))).toThrow(RangeError);
  });

  test.each(CT_ROOTS.map((root, size) => [size, root] as const))('MTH of the first %i entries', (size, root) => {
    expect(rootOf(leaves.slice(0, size)).toString('hex')).toBe(root);
  });

  test.each(CT_INCLUSION)('PATH($index, D[$size])', ({ index, size, path }) => {
    expect(hex(inclusionProof(index, size, range))).toEqual(path);
    expect(verifyInclusion(leaves[index] as Buffer, index, size, path.map(fromHex), fromHex(CT_ROOTS[size] as string))).toBe(true);
  });

  test.each(CT_CONSISTENCY)('PROOF($first, D[$second])', ({ first, second, path }) => {
    expect(hex(consistencyProof(first, second, range))).toEqual(path);
    expect(
      verifyConsistency(first, second, path.map(fromHex), fromHex(CT_ROOTS[first] as string), fromHex(CT_ROOTS[second] as string)),
    ).toBe(true);
  });
});

const SWEEP = 2048;
const LEAVES = Array.from({ length: 5001 }, (_, i) => refLeaf(Buffer.from(`event ${i}`)));
const ref = makeRef(LEAVES, refNode, sha256());
const src = leafRangeHash(LEAVES);

test('every index of every tree size up to 2048: the RFC 9162 path, verified; another index or a changed path refused', () => {
  const leaves = Array.from({ length: SWEEP }, (_, i) => fmix(i + 1));
  const r = makeRef(leaves, MIX.node, 0);
  for (let size = 1; size <= SWEEP; size++) {
    const root = r.mth(0, size);
    for (let index = 0; index < size; index++) {
      const proof = inclusionProof(index, size, r.mth);
      const expected = r.path(index, 0, size);
      if (proof.length !== expected.length || proof.some((p, i) => p !== expected[i]))
        throw new Error(`PATH(${index}, D[${size}]) differs from RFC 9162's`);
      const leaf = leaves[index] as number;
      if (!verifyInclusionWith(MIX, leaf, index, size, proof, root)) throw new Error(`PATH(${index}, D[${size}]) was not verified`);
      if (size > 1 && verifyInclusionWith(MIX, leaf, (index + 1) % size, size, proof, root))
        throw new Error(`PATH(${index}, D[${size}]) verified at another index`);
      if (proof.length > 0) {
        proof[0] = (proof[0] as number) ^ 1;
        if (verifyInclusionWith(MIX, leaf, index, size, proof, root)) throw new Error(`a changed PATH(${index}, D[${size}]) was verified`);
      }
    }
  }
});

test('every pair of tree sizes up to 300: the RFC 9162 consistency proof, verified; a changed proof refused', () => {
  const leaves = Array.from({ length: 300 }, (_, i) => fmix(i + 7));
  const r = makeRef(leaves, MIX.node, 0);
  for (let second = 1; second <= 300; second++) {
    const root2 = r.mth(0, second);
    for (let first = 1; first <= second; first++) {
      const proof = consistencyProof(first, second, r.mth);
      expect(proof).toEqual(r.proof(first, second));
      const root1 = r.mth(0, first);
      if (!verifyConsistencyWith(MIX, first, second, proof, root1, root2))
        throw new Error(`PROOF(${first}, D[${second}]) was not verified`);
      if (
        proof.length > 0 &&
        verifyConsistencyWith(MIX, first, second, [...proof.slice(0, -1), (proof[proof.length - 1] as number) ^ 1], root1, root2)
      ) {
        throw new Error(`a changed PROOF(${first}, D[${second}]) was verified`);
      }
    }
  }
});

test('with SHA-256: every index of every tree size up to 300, and the frontier root and newest-leaf path of every size up to 1024', () => {
  let frontier = Frontier.EMPTY;
  for (let size = 1; size <= 1024; size++) {
    frontier = frontier.append(LEAVES[size - 1] as Buffer);
    const root = ref.mth(0, size);
    expect(frontier.root().equals(root)).toBe(true);
    expect(hex(frontier.lastLeafProof() ?? [])).toEqual(hex(ref.path(size - 1, 0, size)));
    if (size > 300) continue;
    for (let index = 0; index < size; index++) {
      const proof = inclusionProof(index, size, src);
      const expected = ref.path(index, 0, size);
      if (proof.length !== expected.length || proof.some((p, i) => !p.equals(expected[i] as Buffer))) {
        throw new Error(`PATH(${index}, D[${size}]) differs from RFC 9162's`);
      }
      if (!verifyInclusion(LEAVES[index] as Buffer, index, size, proof, root))
        throw new Error(`PATH(${index}, D[${size}]) was not verified`);
    }
  }
  for (let second = 1; second <= 64; second++) {
    for (let first = 0; first <= second; first++) {
      expect(verifyConsistency(first, second, consistencyProof(first, second, src), ref.mth(0, first), ref.mth(0, second))).toBe(true);
    }
  }
});

/** Every way to spoil a proof: each must be refused. */
function spoiled(proof: readonly Buffer[]): Buffer[][] {
  const out: Buffer[][] = [];
  for (let i = 0; i < proof.length; i++) {
    const flipped = proof.map((p) => Buffer.from(p));
    const changed = flipped[i] as Buffer;
    changed[i % 32] = (changed[i % 32] as number) ^ (1 << (i % 8));
    out.push(flipped);
    out.push([...proof.slice(0, i), ...proof.slice(i + 1)]);
  }
  out.push([...proof, LEAVES[0] as Buffer]);
  if (proof.length > 1) out.push([...proof].reverse());
  return out;
}

test('property: inclusion proofs of random indexes in trees up to 5000; spoiled proofs, indexes, sizes and roots refused', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5000 }).chain((size) => fc.tuple(fc.constant(size), fc.nat({ max: size - 1 }))),
      ([size, index]) => {
        const root = ref.mth(0, size);
        const proof = inclusionProof(index, size, src);
        expect(hex(proof)).toEqual(hex(ref.path(index, 0, size)));
        const leaf = LEAVES[index] as Buffer;
        expect(verifyInclusion(leaf, index, size, proof, root)).toBe(true);
        for (const bad of spoiled(proof)) expect(verifyInclusion(leaf, index, size, bad, root)).toBe(false);
        expect(verifyInclusion(LEAVES[(index + 1) % 5000] as Buffer, index, size, proof, root)).toBe(false);
        if (size > 1) expect(verifyInclusion(leaf, (index + 1) % size, size, proof, root)).toBe(false);
        // The size is bound to its root: the signed checkpoint gives both.
        expect(verifyInclusion(leaf, index, size + 1, proof, ref.mth(0, size + 1))).toBe(false);
        expect(verifyInclusion(leaf, index, size, proof, ref.mth(0, size === 1 ? 2 : size - 1))).toBe(false);
        expect(verifyInclusion(leaf, size, size, proof, root)).toBe(false);
      },
    ),
    { numRuns: 400 },
  );
});

test('property: consistency proofs between random sizes up to 5000; spoiled proofs and roots refused', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 5000 }).chain((second) => fc.tuple(fc.integer({ min: 1, max: second - 1 }), fc.constant(second))),
      ([first, second]) => {
        const proof = consistencyProof(first, second, src);
        expect(hex(proof)).toEqual(hex(ref.proof(first, second)));
        const r1 = ref.mth(0, first);
        const r2 = ref.mth(0, second);
        expect(verifyConsistency(first, second, proof, r1, r2)).toBe(true);
        for (const bad of spoiled(proof)) expect(verifyConsistency(first, second, bad, r1, r2)).toBe(false);
        expect(verifyConsistency(first, second, proof, r2, r1)).toBe(false);
        expect(verifyConsistency(first, second, proof, ref.mth(1, first + 1), r2)).toBe(false);
        expect(verifyConsistency(first + 1, second, proof, r1, r2)).toBe(false);
      },
    ),
    { numRuns: 300 },
  );
});

test('property: a frontier restored from its hashes keeps appending to the same roots, and proofs over it match', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 3000 }).chain((base) => fc.tuple(fc.constant(base), fc.integer({ min: 1, max: 600 }))),
      ([base, more]) => {
        let f = Frontier.EMPTY;
        for (let i = 0; i < base; i++) f = f.append(LEAVES[i] as Buffer);
        const restored = Frontier.fromHashes(base, f.hashes(), f.lastInnerProof64());
        expect(restored.root().equals(ref.mth(0, base))).toBe(true);
        if (base > 0) expect(hex(restored.lastLeafProof() ?? [])).toEqual(hex(ref.path(base - 1, 0, base)));
        const added = LEAVES.slice(base, base + more);
        const size = base + added.length;
        expect(rootOf(added, restored).equals(ref.mth(0, size))).toBe(true);
        // Proofs of the leaves after the frontier, computed from it and those leaves only.
        const range = leafRangeHash(added, restored);
        for (const index of [base, size - 1, base + Math.floor(added.length / 2)]) {
          expect(hex(inclusionProof(index, size, range))).toEqual(hex(ref.path(index, 0, size)));
        }
        if (base > 0) expect(hex(consistencyProof(base, size, range))).toEqual(hex(ref.proof(base, size)));
      },
    ),
    { numRuns: 150 },
  );
});

test('a frontier needs one hash per set bit of its size', () => {
  expect(() => Frontier.fromHashes(5, [LEAVES[0] as Buffer])).toThrow(/2 subtrees/);
  expect(() => Frontier.fromHashes(3, [LEAVES[0] as Buffer, Buffer.alloc(31)])).toThrow(/32 bytes/);
  expect(Frontier.fromHashes(0, []).root().equals(EMPTY_ROOT)).toBe(true);
});
