/**
 * The gateway's checkpoint signing key (AUDIT_SIGNING_KEY_FILE): an Ed25519 private key in PKCS#8 PEM, as
 * node:crypto writes it (`ce-audit keygen` makes one).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { formatNote, keyIdOf, rawEd25519, verifierKeyText, type NoteSignature } from './note';

/** The key name in signature lines and verifier keys. Key IDs tell keys apart, so one name serves every deployment. */
export const SIGNING_KEY_NAME = 'ce-audit-gateway';

export interface SigningKey {
  name: string;
  keyId: Buffer;
  /** `name+keyid+base64`: what auditors pass to `ce-audit verify --public-key`. */
  verifierKey: string;
  /** The public key as SPKI PEM. */
  publicKeyPem: string;
  /** Signs a note body: the signed note's text (body, blank line, one signature line). */
  signNote(body: string): string;
}

export class SigningKeyError extends Error {
  override readonly name = 'SigningKeyError';
}

function fromPrivateKey(key: KeyObject): SigningKey {
  if (key.asymmetricKeyType !== 'ed25519') throw new SigningKeyError(`it holds a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  const publicKey = createPublicKey(key);
  const raw = rawEd25519(publicKey);
  const keyId = keyIdOf(SIGNING_KEY_NAME, raw);
  return {
    name: SIGNING_KEY_NAME,
    keyId,
    verifierKey: verifierKeyText(SIGNING_KEY_NAME, raw),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    signNote(body: string): string {
      const signature: NoteSignature = { name: SIGNING_KEY_NAME, keyId, signature: sign(null, Buffer.from(body, 'utf8'), key) };
      return formatNote(body, [signature]);
    },
  };
}

/** Reads the key from PEM text; throws SigningKeyError saying what is wrong with it (never the key itself). */
export function signingKeyFromPem(pem: string | Buffer): SigningKey {
  const text = pem.toString();
  if (!/-----BEGIN PRIVATE KEY-----/.test(text)) {
    throw new SigningKeyError(
      /ENCRYPTED PRIVATE KEY/.test(text)
        ? 'it is an encrypted key; the gateway needs it unencrypted (protect the file instead)'
        : 'it is not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)',
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch (err) {
    throw new SigningKeyError(`it cannot be read as a private key (${(err as Error).message})`);
  }
  return fromPrivateKey(key);
}

/** A new key pair: the private key as PKCS#8 PEM and what to publish. */
export function generateSigningKey(): { privateKeyPem: string; key: SigningKey } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), key: fromPrivateKey(privateKey) };
}
