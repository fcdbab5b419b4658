/**
 * The signing key setting (AUDIT_SIGNING_KEY_FILE) and the signed-note format: what is accepted, what stops the
 * start-up naming the setting, and notes and verifier keys as the C2SP formats define them.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { loadConfig } from '../../src/config';
import { GatewayError } from '../../src/errors';
import {
  checkSignatures,
  formatCheckpointBody,
  formatNote,
  keyIdOf,
  parseCheckpointBody,
  parseNote,
  parseTrustedKey,
  verifierKeyText,
} from '../../src/integrity/note';
import { generateSigningKey, signingKeyFromPem, SIGNING_KEY_NAME } from '../../src/integrity/signing-key';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'signing-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function keyFile(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

function configProblem(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return (err as GatewayError).message;
  }
  throw new Error('loadConfig accepted it');
}

describe('AUDIT_SIGNING_KEY_FILE', () => {
  test('unset: checkpoints unsigned; every 60 s by default', () => {
    expect(loadConfig({}).integrity).toEqual({ checkpointIntervalMs: 60_000, signingKey: undefined });
    expect(loadConfig({ AUDIT_CHECKPOINT_INTERVAL_MS: '5000' }).integrity.checkpointIntervalMs).toBe(5000);
    expect(configProblem({ AUDIT_CHECKPOINT_INTERVAL_MS: '10' })).toMatch(
      /AUDIT_CHECKPOINT_INTERVAL_MS="10" is not valid: expected an integer from 100 to 3600000/,
    );
  });

  test('an Ed25519 PKCS#8 PEM key, as keygen and node:crypto write it, is read once', async () => {
    const { privateKeyPem, key } = generateSigningKey();
    const config = loadConfig({ AUDIT_SIGNING_KEY_FILE: await keyFile('good.pem', privateKeyPem) });
    expect(config.integrity.signingKey?.verifierKey).toBe(key.verifierKey);
  });

  test.each([
    ['a missing file', undefined, /the file cannot be read: ENOENT/],
    ['not PEM', 'just text', /not a PKCS#8 PEM private key/],
    [
      'a public key',
      generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      /not a PKCS#8 PEM private key/,
    ],
    [
      'an RSA key',
      generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      /holds a rsa key, not Ed25519/,
    ],
    [
      'an encrypted key',
      generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' }).toString(),
      /encrypted key/,
    ],
    ['a damaged key', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', /cannot be read as a private key/],
  ])('%s stops the start, naming the setting and what it accepts', async (name, text, why) => {
    const file = text === undefined ? path.join(dir, 'missing.pem') : await keyFile(`${name}.pem`, text);
    const message = configProblem({ AUDIT_SIGNING_KEY_FILE: file });
    expect(message).toMatch(
      /AUDIT_SIGNING_KEY_FILE=".*" is not valid: expected an Ed25519 private key in PKCS#8 PEM, as ce-audit keygen writes it/,
    );
    expect(message).toMatch(why);
    expect(message).not.toMatch(/PRIVATE KEY-----\n[A-Za-z0-9]/);
  });
});

describe('signed notes and checkpoints (C2SP)', () => {
  test('a signed checkpoint: body, blank line, an em-dash signature line; verified by the PEM and by the verifier key', () => {
    const { privateKeyPem, key } = generateSigningKey();
    const body = formatCheckpointBody({ origin: 'ce-audit-gateway/eu-de/h/1', size: 3, root: Buffer.alloc(32, 9) });
    expect(body).toBe(`ce-audit-gateway/eu-de/h/1\n3\n${Buffer.alloc(32, 9).toString('base64')}\n`);
    const text = signingKeyFromPem(privateKeyPem).signNote(body);
    expect(text).toMatch(new RegExp(`^${body.replace(/[+/]/g, '\\$&')}\\n— ce-audit-gateway [A-Za-z0-9+/]+=*\\n$`));
    const note = parseNote(text);
    expect(note.body).toBe(body);
    expect(note.signatures[0]?.keyId.equals(key.keyId)).toBe(true);
    expect(parseCheckpointBody(note.body)).toMatchObject({ origin: 'ce-audit-gateway/eu-de/h/1', size: 3, extensions: [] });
    for (const trusted of [parseTrustedKey(key.publicKeyPem, 'pem'), parseTrustedKey(key.verifierKey, 'vkey')]) {
      expect(checkSignatures(note, [trusted]).verdict).toBe('verified');
    }
    // Another body under the same signature does not verify.
    expect(checkSignatures({ ...note, body: body.replace('\n3\n', '\n4\n') }, [parseTrustedKey(key.verifierKey, 'v')]).verdict).toBe(
      'bad-signature',
    );
    expect(checkSignatures(note, [parseTrustedKey(generateSigningKey().key.verifierKey, 'other')]).verdict).toBe('unknown-key');
    expect(checkSignatures(parseNote(formatNote(body, [])), []).verdict).toBe('unsigned');
  });

  test('property: verifier keys round-trip, whatever their base64 holds (+ and / included)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.stringMatching(/^[a-z][a-z0-9./-]{0,20}$/), (raw, name) => {
        const text = verifierKeyText(name, Buffer.from(raw));
        expect(text.startsWith(`${name}+${keyIdOf(name, Buffer.from(raw)).toString('hex')}+`)).toBe(true);
        const ed = Buffer.from(raw);
        // Any 32 bytes are not always a valid Ed25519 point; parsing either succeeds with the same bytes or says why.
        try {
          expect(parseTrustedKey(text, 'k').raw.equals(ed)).toBe(true);
        } catch (err) {
          expect((err as Error).message).not.toMatch(/neither a PEM public key nor a verifier key/);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('malformed notes, checkpoints and keys are refused with the reason', () => {
    expect(() => parseNote('no blank line\n')).toThrow(/no blank line/);
    expect(() => parseNote('a\n\nnot a signature\n')).toThrow(/not a signature line/);
    expect(() => parseNote('a\n\n— name !!!!\n')).toThrow(/not base64/);
    expect(() => parseCheckpointBody('origin\n007\nAAAA\n')).toThrow(/bad tree size/);
    expect(() => parseCheckpointBody('origin\n7\nAAAA\n')).toThrow(/32 bytes/);
    expect(() => parseTrustedKey('ce-audit-gateway+00000000+AQ==', 'k')).toThrow(/not an Ed25519 verifier key/);
    const { key } = generateSigningKey();
    const wrongId = key.verifierKey.replace(/\+([0-9a-f]{8})\+/, '+00000000+');
    expect(() => parseTrustedKey(wrongId, 'k')).toThrow(/key ID does not match/);
    expect(key.name).toBe(SIGNING_KEY_NAME);
  });
});
