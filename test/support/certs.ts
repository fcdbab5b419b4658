/**
 * Throwaway TLS material for tests, made at test time with the openssl CLI (no shell, explicit arguments):
 * a certificate authority, a server certificate it signed for 127.0.0.1 and localhost, one it signed for
 * another name only (example.com), one it signed for client authentication only, and a self-signed server
 * certificate the authority never saw.
 * EC P-256 keys, valid for two days, in a temporary directory removed by `cleanup()`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface PemFiles {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

export interface TestCerts {
  dir: string;
  /** The certificate authority (CA:TRUE, keyCertSign). */
  ca: PemFiles;
  /** Signed by the CA, subjectAltName IP:127.0.0.1, DNS:localhost. */
  server: PemFiles;
  /** Signed by the CA, subjectAltName DNS:example.com only (wrong name for 127.0.0.1). */
  wrongName: PemFiles;
  /** Self-signed for IP:127.0.0.1, DNS:localhost: not signed by the CA. */
  selfSigned: PemFiles;
  /** Signed by the CA for IP:127.0.0.1, DNS:localhost, but for client authentication only (no serverAuth). */
  clientAuthOnly: PemFiles;
  cleanup: () => void;
}

const OPENSSL = existsSync('/usr/bin/openssl') ? '/usr/bin/openssl' : 'openssl';
const DAYS = '2';
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(args: string[]): void {
  execFileSync(OPENSSL, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

function serial(): string {
  // Positive, 64 bits: unique enough for throwaway certificates.
  const bytes = randomBytes(8);
  bytes.writeUInt8(bytes.readUInt8(0) & 0x7f, 0);
  return `0x${bytes.toString('hex')}`;
}

function read(certFile: string, keyFile: string): PemFiles {
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

/** A key and certificate signed by the CA, for the given subjectAltName (and extended key usage). */
function signedServer(dir: string, name: string, ca: PemFiles, subjectAltName: string, extendedKeyUsage = 'serverAuth'): PemFiles {
  const keyFile = path.join(dir, `${name}-key.pem`);
  const csrFile = path.join(dir, `${name}.csr`);
  const certFile = path.join(dir, `${name}-cert.pem`);
  const extFile = path.join(dir, `${name}.ext`);
  writeFileSync(
    extFile,
    [
      `subjectAltName=${subjectAltName}`,
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      `extendedKeyUsage=${extendedKeyUsage}`,
      '',
    ].join('\n'),
  );
  openssl(['req', '-new', ...EC_KEY, '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=ce-audit-gateway test ${name}`]);
  openssl([
    'x509',
    '-req',
    '-in',
    csrFile,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-set_serial',
    serial(),
    '-days',
    DAYS,
    '-sha256',
    '-extfile',
    extFile,
    '-out',
    certFile,
  ]);
  return read(certFile, keyFile);
}

/** A new key and a certificate it signs itself, with these X.509 v3 extensions. */
function selfSignedCert(dir: string, name: string, subject: string, extensions: readonly string[]): PemFiles {
  const keyFile = path.join(dir, `${name}-key.pem`);
  const certFile = path.join(dir, `${name}-cert.pem`);
  openssl([
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    DAYS,
    '-sha256',
    '-set_serial',
    serial(),
    '-subj',
    subject,
    ...extensions.flatMap((e) => ['-addext', e]),
  ]);
  return read(certFile, keyFile);
}

/** Generate the whole set (about a tenth of a second). */
export function createTestCerts(): TestCerts {
  const dir = mkdtempSync(path.join(tmpdir(), 'ce-audit-certs-'));
  try {
    const ca = selfSignedCert(dir, 'ca', '/CN=ce-audit-gateway test CA', [
      'basicConstraints=critical,CA:TRUE',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    const server = signedServer(dir, 'server', ca, 'IP:127.0.0.1,DNS:localhost');
    const wrongName = signedServer(dir, 'wrong-name', ca, 'DNS:example.com');
    const clientAuthOnly = signedServer(dir, 'client-auth-only', ca, 'IP:127.0.0.1,DNS:localhost', 'clientAuth');

    const selfSigned = selfSignedCert(dir, 'self-signed', '/CN=ce-audit-gateway test self-signed', [
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      'basicConstraints=critical,CA:FALSE',
      'extendedKeyUsage=serverAuth',
    ]);
    return { dir, ca, server, wrongName, selfSigned, clientAuthOnly, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
