/**
 * RFC 8785 canonical JSON: the RFC's own examples, and properties against `canonicalize` (the reference
 * implementation's package) over generated JSON: numbers, unicode (astral planes, escapes, control characters),
 * key order, nesting.
 */
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { canonicalJson, CanonicalJsonError, memberSlot, memberSplice } from '../../src/integrity/canonical-json';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

test('RFC 8785 3.2.2: whitespace, numbers, string escapes and literals', () => {
  const input = `{
    "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
    "string": "\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\"\\/",
    "literals": [null, true, false]
  }`;
  expect(canonicalJson(JSON.parse(input))).toBe(
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
  );
});

test('RFC 8785 3.2.3: members sorted by UTF-16 code units, recursively; arrays keep their order', () => {
  const input = {
    '\u20ac': 'Euro Sign',
    '\r': 'Carriage Return',
    '\ufb33': 'Hebrew Letter Dalet With Dagesh',
    '1': 'One',
    '\ud83d\ude00': 'Emoji: Grinning Face',
    '\u0080': 'Control',
    '\u00f6': 'Latin Small Letter O With Diaeresis',
  };
  const keys = Object.keys(JSON.parse(canonicalJson(input)) as object);
  // JSON.parse puts integer-like keys first again; read the order from the text instead.
  const text = canonicalJson(input);
  const order = ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'].map((k) => text.indexOf(JSON.stringify(k)));
  expect(order).toEqual([...order].sort((a, b) => a - b));
  expect(keys).toHaveLength(7);
  expect(canonicalJson({ b: [3, { z: 1, a: 2 }, 1], a: { d: 1, c: { f: 1, e: 2 } } })).toBe(
    '{"a":{"c":{"e":2,"f":1},"d":1},"b":[3,{"a":2,"z":1},1]}',
  );
  // Integer-like names sort as strings ("10" < "9"), not as JavaScript orders them.
  expect(canonicalJson({ 9: 'a', 10: 'b', x: 'c' })).toBe('{"10":"b","9":"a","x":"c"}');
});

// RFC 8785 Appendix B: IEEE 754 doubles and their canonical text.
const NUMBERS: Array<[string, string]> = [
  ['0000000000000000', '0'],
  ['8000000000000000', '0'],
  ['0000000000000001', '5e-324'],
  ['8000000000000001', '-5e-324'],
  ['7fefffffffffffff', '1.7976931348623157e+308'],
  ['ffefffffffffffff', '-1.7976931348623157e+308'],
  ['4340000000000000', '9007199254740992'],
  ['c340000000000000', '-9007199254740992'],
  ['4430000000000000', '295147905179352830000'],
  ['44b52d02c7e14af5', '9.999999999999997e+22'],
  ['44b52d02c7e14af6', '1e+23'],
  ['44b52d02c7e14af7', '1.0000000000000001e+23'],
  ['444b1ae4d6e2ef4e', '999999999999999700000'],
  ['444b1ae4d6e2ef4f', '999999999999999900000'],
  ['444b1ae4d6e2ef50', '1e+21'],
  ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
  ['3eb0c6f7a0b5ed8d', '0.000001'],
  ['41b3de4355555553', '333333333.3333332'],
  ['41b3de4355555554', '333333333.33333325'],
  ['41b3de4355555555', '333333333.3333333'],
  ['41b3de4355555556', '333333333.3333334'],
  ['41b3de4355555557', '333333333.33333343'],
  ['becbf647612f3696', '-0.0000033333333333333333'],
  ['43143ff3c1cb0959', '1424953923781206.2'],
];

test.each(NUMBERS)('RFC 8785 Appendix B: %s is written %s', (hex, text) => {
  const value = Buffer.from(hex, 'hex').readDoubleBE(0);
  expect(canonicalJson(value)).toBe(text);
  expect(canonicalJson([value])).toBe(`[${text}]`);
  expect(canonicalJson({ n: value, a: 1 })).toBe(`{"a":1,"n":${text}}`);
});

test('NaN and the infinities are not JSON numbers', () => {
  for (const bad of [Number.NaN, Infinity, -Infinity]) {
    expect(() => canonicalJson(bad)).toThrow(CanonicalJsonError);
    expect(() => canonicalJson({ a: [bad] })).toThrow(CanonicalJsonError);
  }
});

test('lone surrogates: refused by default (I-JSON), written as U+FFFD when asked', () => {
  expect(() => canonicalJson('a\ud800b')).toThrow(/lone surrogate/);
  expect(() => canonicalJson({ k: ['\udc00'] })).toThrow(/lone surrogate/);
  expect(() => canonicalJson({ '\ud800': 1 })).toThrow(/lone surrogate/);
  expect(canonicalJson({ k: 'a\ud800b' }, 'replace')).toBe('{"k":"a\ufffdb"}');
  expect(canonicalJson({ '\ud800': 1 }, 'replace')).toBe('{"\ufffd":1}');
  // Two names that become the same are duplicate names.
  expect(() => canonicalJson({ '\ud800': 1, '\ud801': 2 }, 'replace')).toThrow(/duplicate member name/);
  // A well-formed pair is one character, kept as it is.
  expect(canonicalJson('\ud83d\ude00')).toBe('"\ud83d\ude00"');
});

test('only JSON data goes in', () => {
  expect(() => canonicalJson(undefined)).toThrow(CanonicalJsonError);
  expect(() => canonicalJson([1, undefined])).toThrow(CanonicalJsonError);
  expect(() => canonicalJson({ d: new Date(0) })).toThrow(CanonicalJsonError);
  expect(() => canonicalJson({ m: new Map() })).toThrow(CanonicalJsonError);
  expect(() => canonicalJson({ f: () => 1 })).toThrow(CanonicalJsonError);
  expect(() => canonicalJson({ b: BigInt(1) })).toThrow(CanonicalJsonError);
  // Members whose value is undefined are left out, as JSON.stringify does.
  expect(canonicalJson({ b: 1, a: undefined })).toBe('{"b":1}');
  expect(canonicalJson(Object.assign(Object.create(null) as object, { b: 1, a: 2 }))).toBe('{"a":2,"b":1}');
  // JSON.parse makes "__proto__" an own member: it is data like any other.
  expect(canonicalJson(JSON.parse('{"z":1,"__proto__":{"x":1}}'))).toBe('{"__proto__":{"x":1},"z":1}');
});

/** Every kind of string: ASCII with escapes and controls, the BMP, astral planes. */
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.stringMatching(/^[\u0000-\u001f"\\/\u007f-\u00a0\u2028\u2029]{0,8}$/),
);
const anyNumber = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.constantFrom(0, -0, 1e21, 1e-7, 5e-324, Number.MAX_SAFE_INTEGER),
);
const { json } = fc.letrec<{ json: Json }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    anyNumber,
    anyString,
    fc.array(tie('json'), { maxLength: 5 }),
    fc.dictionary(anyString, tie('json'), { maxKeys: 6 }),
  ),
}));

/** The same value with every object's members inserted in another order. */
function reorder(value: Json, seed: number): Json {
  if (Array.isArray(value)) return value.map((v, i) => reorder(v, seed + i));
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  const shuffled = keys.map((k, i) => [k, (i * 7919 + seed) % (keys.length + 3)] as const).sort((a, b) => a[1] - b[1]);
  const out: { [key: string]: Json } = {};
  for (const [k] of shuffled)
    Object.defineProperty(out, k, { value: reorder(value[k] as Json, seed + 1), enumerable: true, writable: true, configurable: true });
  return out;
}

/** The same value built with sorted members: the path that hands whole subtrees to JSON.stringify. */
function sorted(value: Json): Json {
  if (Array.isArray(value)) return value.map(sorted);
  if (value === null || typeof value !== 'object') return value;
  const out: { [key: string]: Json } = {};
  for (const k of Object.keys(value).sort())
    Object.defineProperty(out, k, { value: sorted(value[k] as Json), enumerable: true, writable: true, configurable: true });
  return out;
}

test('property: the same text as canonicalize, whatever the member order, on both paths', () => {
  fc.assert(
    fc.property(json, fc.nat(), (value, seed) => {
      const expected = canonicalize(value) as string;
      expect(canonicalJson(value)).toBe(expected);
      expect(canonicalJson(reorder(value, seed))).toBe(expected);
      expect(canonicalJson(sorted(value))).toBe(expected);
    }),
    { numRuns: 2000 },
  );
});

test('property: canonical text parses back to the value and is a fixed point', () => {
  fc.assert(
    fc.property(json, (value) => {
      const text = canonicalJson(value);
      const back = JSON.parse(text) as Json;
      expect(canonicalJson(back)).toBe(text);
      // -0 is written 0: compare through JSON, which does the same.
      expect(back).toEqual(JSON.parse(JSON.stringify(value)));
      // Re-serialised with whitespace and another member order, it canonicalises to the same text.
      expect(canonicalJson(JSON.parse(JSON.stringify(reorder(back, 3), null, 2)))).toBe(text);
    }),
    { numRuns: 1000 },
  );
});

test('property: numbers are written as ECMAScript writes them', () => {
  fc.assert(
    fc.property(anyNumber, (n) => {
      expect(canonicalJson(n)).toBe(Object.is(n, -0) ? '0' : String(n));
      expect(canonicalJson(n)).toBe(canonicalize(n));
    }),
    { numRuns: 5000 },
  );
});

test('property: a member spliced in at memberSlot gives the canonical text of the larger object', () => {
  const name = fc.oneof(fc.constant('auditChain'), anyString);
  fc.assert(
    fc.property(fc.dictionary(anyString, json, { maxKeys: 8 }), name, json, (object, member, value) => {
      fc.pre(!Object.hasOwn(object, member));
      const text = canonicalJson(object);
      const { head, tail } = memberSplice(text, memberSlot(object, text, member));
      const withMember = { ...object };
      Object.defineProperty(withMember, member, { value, enumerable: true, writable: true, configurable: true });
      expect(head + `${JSON.stringify(member)}:${canonicalJson(value)}` + tail).toBe(canonicalJson(withMember));
    }),
    { numRuns: 2000 },
  );
});
