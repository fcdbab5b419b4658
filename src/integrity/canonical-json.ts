/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): the one serialisation every event is hashed and sent in.
 *
 * Members sorted by their names' UTF-16 code units (recursively; arrays keep their order), no whitespace,
 * numbers as ECMAScript writes them (-0 as 0, 1e+30), strings with JSON.stringify's minimal escaping. Only
 * I-JSON goes in: NaN and Infinity, lone surrogates, duplicate names and anything that is not JSON data
 * (undefined in an array, functions, class instances) are errors. An object member whose value is undefined is
 * left out, as JSON.stringify does, so optional fields need no special care.
 *
 * Written here rather than taken from `canonicalize` (the reference implementation's package): its current
 * versions are ES modules only (they do not load under ts-jest's CommonJS), it accepts lone surrogates (not I-JSON),
 * and it builds every member by string concatenation. This one hands each subtree whose members are already in
 * order to the engine's JSON.stringify, which is canonical for such a subtree: events built with their keys in
 * sorted order serialise at close to JSON.stringify's speed. The test suite checks it against `canonicalize` and
 * RFC 8785's examples.
 */

declare global {
  // ES2024, in Node.js 20 and later; the project's TypeScript lib is ES2023.
  interface String {
    isWellFormed(): boolean;
    toWellFormed(): string;
  }
}

export class CanonicalJsonError extends Error {
  override readonly name = 'CanonicalJsonError';
}

/**
 * `reject` (RFC 8785, and what the verifier uses) refuses strings with lone surrogates; `replace` (the gateway,
 * whose events carry what callers sent) writes U+FFFD in their place, so that every copy of the event is I-JSON
 * and any re-serialising sink keeps it as it is.
 */
export type LoneSurrogates = 'reject' | 'replace';

/** An object literal or JSON.parse result: its prototype is an Object.prototype (of any realm) or null. */
function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null || Object.getPrototypeOf(proto) === null;
}

/** True when JSON.stringify(value) is already the canonical form: names in order, numbers finite, strings well formed. */
function isCanonicalAsIs(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
      return value.isWellFormed();
    case 'number':
      return Number.isFinite(value);
    case 'boolean':
      return true;
    case 'object': {
      if (value === null) return true;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined || !isCanonicalAsIs(item)) return false;
        }
        return true;
      }
      if (!isPlainObject(value)) return false;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record);
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i] as string;
        if (i > 0 && !((keys[i - 1] as string) < key)) return false;
        if (!key.isWellFormed()) return false;
        const member = record[key];
        if (member !== undefined && !isCanonicalAsIs(member)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

function stringText(value: string, loneSurrogates: LoneSurrogates): string {
  if (value.isWellFormed()) return JSON.stringify(value);
  if (loneSurrogates === 'reject') throw new CanonicalJsonError('a string holds a lone surrogate (not I-JSON)');
  return JSON.stringify(value.toWellFormed());
}

function serialize(value: unknown, loneSurrogates: LoneSurrogates): string {
  switch (typeof value) {
    case 'string':
      return stringText(value, loneSurrogates);
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`${value} is not a JSON number`);
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (isCanonicalAsIs(value)) return JSON.stringify(value);
      if (Array.isArray(value)) {
        let text = '[';
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined) throw new CanonicalJsonError('undefined is not a JSON value');
          text += (i === 0 ? '' : ',') + serialize(item, loneSurrogates);
        }
        return `${text}]`;
      }
      if (!isPlainObject(value)) throw new CanonicalJsonError(`a ${value.constructor?.name ?? 'non-plain'} object is not JSON data`);
      return objectText(value as Record<string, unknown>, loneSurrogates);
    }
    default:
      throw new CanonicalJsonError(`a ${typeof value} is not a JSON value`);
  }
}

function objectText(record: Record<string, unknown>, loneSurrogates: LoneSurrogates): string {
  const members: Array<[name: string, value: unknown]> = [];
  for (const key of Object.keys(record)) {
    const member = record[key];
    if (member === undefined) continue;
    const name = key.isWellFormed() ? key : loneSurrogates === 'replace' ? key.toWellFormed() : undefined;
    if (name === undefined) throw new CanonicalJsonError('a member name holds a lone surrogate (not I-JSON)');
    members.push([name, member]);
  }
  // Array.prototype.sort compares strings by UTF-16 code units: RFC 8785's order.
  members.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let text = '{';
  for (let i = 0; i < members.length; i++) {
    const [name, member] = members[i] as [string, unknown];
    if (i > 0 && (members[i - 1] as [string, unknown])[0] === name)
      throw new CanonicalJsonError(`duplicate member name ${JSON.stringify(name)}`);
    text += `${i === 0 ? '' : ','}${JSON.stringify(name)}:${serialize(member, loneSurrogates)}`;
  }
  return `${text}}`;
}

/** The RFC 8785 form of a JSON value. Throws CanonicalJsonError for anything that is not I-JSON. */
export function canonicalJson(value: unknown, loneSurrogates: LoneSurrogates = 'reject'): string {
  return serialize(value, loneSurrogates);
}

/**
 * Where a member named `name` goes in the canonical JSON `json` of `object` (which does not have it): the offset
 * just after the members that sort before it. With `spliceMember` that gives the canonical JSON of the object with
 * the member added, without serialising it again.
 */
export function memberSlot(object: Record<string, unknown>, json: string, name: string, loneSurrogates: LoneSurrogates = 'reject'): number {
  let at = 1;
  let before = 0;
  for (const key of Object.keys(object)) {
    const member = object[key];
    if (member === undefined || !(key < name)) continue;
    at += JSON.stringify(key).length + 1 + serialize(member, loneSurrogates).length;
    before++;
  }
  at += before > 1 ? before - 1 : 0;
  if (before > 0 && json[at] !== ',' && json[at] !== '}') throw new Error(`no member boundary at ${at} of the canonical JSON`);
  return at;
}

/**
 * The canonical JSON of an object with one more member: `head` + `"name":value` + `tail`. `slot` is memberSlot()'s
 * offset in the object's canonical JSON `json`.
 */
export function memberSplice(json: string, slot: number): { head: string; tail: string } {
  const head = slot > 1 ? `${json.slice(0, slot)},` : '{';
  const rest = json.slice(slot);
  return { head, tail: slot > 1 || rest === '}' ? rest : `,${rest}` };
}
