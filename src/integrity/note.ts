/**
 * Signed notes (c2sp.org/signed-note) carrying checkpoints (c2sp.org/tlog-checkpoint).
 *
 *   <origin>\n<tree size>\n<base64 root>\n          the body: what is signed, byte for byte
 *   \n                                             a blank line
 *   — <key name> <base64(4-byte key ID || Ed25519 signature)>\n    one line per signature (none: unsigned)
 *
 * Key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4], a hint only: a signature counts when the
 * public key it names verifies it. A verifier key is written `<name>+<8 hex key ID>+<base64(0x01 || public key)>`.
 */
import { createPublicKey, hash, verify, type KeyObject } from 'node:crypto';

/** Signature type byte of Ed25519 in signed notes. */
export const ED25519_TYPE = 0x01;
const EM_DASH = '\u2014';
const KEY_NAME = /^[^\s+]+$/u;
const DECIMAL = /^(0|[1-9][0-9]*)$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export class NoteFormatError extends Error {
  override readonly name = 'NoteFormatError';
}

/** The 4-byte key ID of an Ed25519 public key (32 raw bytes) under a key name. */
export function keyIdOf(name: string, publicKey: Buffer): Buffer {
  return hash('sha256', Buffer.concat([Buffer.from(name, 'utf8'), Buffer.of(0x0a, ED25519_TYPE), publicKey]), 'buffer').subarray(0, 4);
}

/** `<name>+<hex key ID>+<base64(0x01 || public key)>`: how a signed-note verifier key is published. */
export function verifierKeyText(name: string, publicKey: Buffer): string {
  return `${name}+${keyIdOf(name, publicKey).toString('hex')}+${Buffer.concat([Buffer.of(ED25519_TYPE), publicKey]).toString('base64')}`;
}

export function isKeyName(name: string): boolean {
  return KEY_NAME.test(name);
}

export function decodeBase64(text: string): Buffer | undefined {
  if (!BASE64.test(text) || text.length % 4 !== 0) return undefined;
  return Buffer.from(text, 'base64');
}

export interface NoteSignature {
  name: string;
  keyId: Buffer;
  signature: Buffer;
}

export interface Note {
  /** What the signatures sign: every line up to the blank line, each with its newline. */
  body: string;
  signatures: NoteSignature[];
}

/** body (ending in a newline) + blank line + one line per signature. Without signatures, an unsigned note. */
export function formatNote(body: string, signatures: readonly NoteSignature[]): string {
  if (!body.endsWith('\n') || body.includes('\n\n')) throw new NoteFormatError('a note body is non-empty lines, each ending in a newline');
  let text = `${body}\n`;
  for (const s of signatures) text += `${EM_DASH} ${s.name} ${Buffer.concat([s.keyId, s.signature]).toString('base64')}\n`;
  return text;
}

/** Parses a note. Unsigned notes (no signature lines) are accepted here; whether that is enough is the caller's call. */
export function parseNote(text: string): Note {
  const split = text.indexOf('\n\n');
  if (split <= 0) throw new NoteFormatError('no blank line after the note body');
  const body = text.slice(0, split + 1);
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(text)) throw new NoteFormatError('the note holds control characters');
  const signatures: NoteSignature[] = [];
  const lines = text.slice(split + 2).split('\n');
  if (lines.pop() !== '') throw new NoteFormatError('the last signature line does not end in a newline');
  for (const line of lines) {
    const m = /^\u2014 (\S+) (\S+)$/u.exec(line);
    if (!m) throw new NoteFormatError(`not a signature line: ${JSON.stringify(line.slice(0, 80))}`);
    const name = m[1] as string;
    const bytes = decodeBase64(m[2] as string);
    if (!isKeyName(name)) throw new NoteFormatError(`bad key name ${JSON.stringify(name)}`);
    if (!bytes || bytes.length < 5) throw new NoteFormatError(`the signature of ${name} is not base64 of a key ID and a signature`);
    signatures.push({ name, keyId: bytes.subarray(0, 4), signature: bytes.subarray(4) });
  }
  return { body, signatures };
}

export interface Checkpoint {
  origin: string;
  size: number;
  root: Buffer;
}

/** The checkpoint body: origin, decimal tree size, base64 root, each on its own line. */
export function formatCheckpointBody(c: Checkpoint): string {
  if (!c.origin || /\s/u.test(c.origin)) throw new NoteFormatError('a checkpoint origin is one non-empty line without spaces');
  return `${c.origin}\n${c.size}\n${c.root.toString('base64')}\n`;
}

/** Parses a checkpoint body. Extension lines (optional, opaque in the format) are returned as they are. */
export function parseCheckpointBody(body: string): Checkpoint & { extensions: string[] } {
  const lines = body.split('\n');
  if (lines.pop() !== '' || lines.length < 3) throw new NoteFormatError('a checkpoint has an origin, a tree size and a root hash');
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (!origin) throw new NoteFormatError('empty checkpoint origin');
  if (!DECIMAL.test(sizeText) || !Number.isSafeInteger(Number(sizeText)))
    throw new NoteFormatError(`bad tree size ${JSON.stringify(sizeText)}`);
  const root = decodeBase64(rootText);
  if (!root || root.length !== 32) throw new NoteFormatError('the root hash is not base64 of 32 bytes');
  if (extensions.some((l) => l === '')) throw new NoteFormatError('empty extension line');
  return { origin, size: Number(sizeText), root, extensions };
}

/** A public key an auditor trusts: from a PEM (any key name) or from a verifier key (its own name only). */
export interface TrustedKey {
  /** Where it came from, for messages: a file name. */
  source: string;
  /** The key name a verifier key is bound to; undefined for a PEM public key, which carries none. */
  name: string | undefined;
  publicKey: KeyObject;
  /** The 32 raw bytes. */
  raw: Buffer;
}

export function rawEd25519(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new NoteFormatError('not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

/** Reads a trusted key from text: a PEM SPKI public key, or a signed-note verifier key. Throws with the reason. */
export function parseTrustedKey(text: string, source: string): TrustedKey {
  const trimmed = text.trim();
  if (trimmed.includes('-----BEGIN')) {
    if (/PRIVATE KEY-----/.test(trimmed))
      throw new NoteFormatError(`${source} holds a private key: give the public key (keygen wrote it beside the private one)`);
    let key: KeyObject;
    try {
      key = createPublicKey(trimmed);
    } catch (err) {
      throw new NoteFormatError(`${source} is not a PEM public key (${(err as Error).message})`);
    }
    if (key.asymmetricKeyType !== 'ed25519')
      throw new NoteFormatError(`${source} holds a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
    return { source, name: undefined, publicKey: key, raw: rawEd25519(key) };
  }
  // name+keyid+base64: the name has no '+', the key ID is 8 hex digits, the base64 may hold '+' itself.
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+(\S+)$/.exec(trimmed);
  if (!m) throw new NoteFormatError(`${source} is neither a PEM public key nor a verifier key (name+keyid+base64)`);
  const [, name, idHex, keyText] = m as unknown as [string, string, string, string];
  const bytes = decodeBase64(keyText);
  if (!isKeyName(name) || !/^[0-9a-f]{8}$/.test(idHex) || !bytes || bytes.length !== 33 || bytes[0] !== ED25519_TYPE) {
    throw new NoteFormatError(`${source} is not an Ed25519 verifier key (name+8 hex digits+base64 of 0x01 and 32 bytes)`);
  }
  const raw = bytes.subarray(1);
  if (keyIdOf(name, raw).toString('hex') !== idHex) throw new NoteFormatError(`${source}: the key ID does not match the key`);
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
  return { source, name, publicKey, raw };
}

export type SignatureVerdict = 'verified' | 'bad-signature' | 'unknown-key' | 'unsigned';

export interface SignatureCheck {
  verdict: SignatureVerdict;
  /** The keys that verified a signature. */
  verifiedBy: TrustedKey[];
  /** `name+keyid` of each signature line no trusted key matched. */
  unknown: string[];
  /** `name+keyid` of each line a trusted key matched but did not verify. */
  failed: string[];
}

/** Checks a note's signatures against trusted keys: verified when at least one trusted key verifies its line. */
export function checkSignatures(note: Note, keys: readonly TrustedKey[]): SignatureCheck {
  const body = Buffer.from(note.body, 'utf8');
  const check: SignatureCheck = { verdict: 'unsigned', verifiedBy: [], unknown: [], failed: [] };
  for (const s of note.signatures) {
    const label = `${s.name}+${s.keyId.toString('hex')}`;
    const candidates = keys.filter((k) => (k.name === undefined || k.name === s.name) && keyIdOf(s.name, k.raw).equals(s.keyId));
    if (candidates.length === 0) {
      check.unknown.push(label);
      continue;
    }
    const by = candidates.find((k) => s.signature.length === 64 && verify(null, body, k.publicKey, s.signature));
    if (by) check.verifiedBy.push(by);
    else check.failed.push(label);
  }
  if (check.verifiedBy.length > 0) check.verdict = 'verified';
  else if (check.failed.length > 0) check.verdict = 'bad-signature';
  else if (check.unknown.length > 0) check.verdict = 'unknown-key';
  return check;
}
