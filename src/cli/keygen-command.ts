import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generateSigningKey } from '../integrity/signing-key';
import { InputError } from '../verify/inputs';
import { one, parseArgs, UsageError } from './args';
import { EXIT, type Io } from './io';

export const KEYGEN_USAGE = `ce-audit keygen --out DIR

Makes an Ed25519 key pair for the gateway's checkpoints, in DIR (created if missing):
  audit-signing-key.pem      the private key (PKCS#8 PEM, mode 0600): AUDIT_SIGNING_KEY_FILE; keep it secret
  audit-signing-key.pub.pem  the public key (SPKI PEM): ce-audit verify --public-key
  audit-signing-key.vkey     the same as a signed-note verifier key (name+keyid+base64)
Existing files are never overwritten.

Exit: 0 written, 2 usage, 3 a file exists or cannot be written.`;

export async function runKeygen(argv: readonly string[], io: Io): Promise<number> {
  const args = parseArgs(argv, { out: {} });
  const dir = one(args, 'out');
  if (!dir) throw new UsageError('keygen needs --out DIR');
  if (args.positional.length > 0) throw new UsageError(`unexpected ${args.positional.join(' ')}`);
  const { privateKeyPem, key } = generateSigningKey();
  const files = {
    private: path.join(dir, 'audit-signing-key.pem'),
    public: path.join(dir, 'audit-signing-key.pub.pem'),
    vkey: path.join(dir, 'audit-signing-key.vkey'),
  };
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // 'wx': fails when the file exists, so a key in use is never replaced.
    await writeFile(files.private, privateKeyPem, { mode: 0o600, flag: 'wx' });
    await chmod(files.private, 0o600);
    await writeFile(files.public, key.publicKeyPem, { mode: 0o644, flag: 'wx' });
    await writeFile(files.vkey, `${key.verifierKey}\n`, { mode: 0o644, flag: 'wx' });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new InputError(
      e.code === 'EEXIST' ? `${e.path ?? dir} exists already: keygen never overwrites a key` : `cannot write in ${dir}: ${e.message}`,
    );
  }
  io.stdout.write(
    [
      `private key: ${files.private}   (AUDIT_SIGNING_KEY_FILE; keep it secret)`,
      `public key:  ${files.public}   (ce-audit verify --public-key)`,
      `verifier key: ${key.verifierKey}`,
      `key id: ${key.keyId.toString('hex')}`,
      '',
    ].join('\n'),
  );
  return EXIT.OK;
}
