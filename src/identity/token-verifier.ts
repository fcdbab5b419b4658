import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { request } from 'undici';

/** What verification concluded about a bearer token. */
export type Verification = { verified: true; claims: Record<string, unknown> } | { verified: false; reason: string };

interface Jwk {
  kty?: string;
  kid?: string;
  alg?: string;
  use?: string;
  n?: string;
  e?: string;
}

export interface TokenVerifierOptions {
  jwksUrl: string;
  issuer: string;
  /** Clock skew tolerated on exp and nbf. */
  leewaySeconds?: number;
  /** A key id not in the cached set triggers a refresh, at most this often. */
  refreshMinIntervalMs?: number;
  timeoutMs?: number;
  onError?: (err: Error) => void;
}

function b64json(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Verifies IAM access tokens (RS256 JWTs) against the issuer's JWKS: signature, issuer, expiry and
 * not-before. Keys are cached and refreshed when a token names a key id the cache does not have (IAM rotates
 * its signing keys), with a floor between refreshes so forged key ids cannot make the gateway hammer IAM.
 */
export class TokenVerifier {
  private keys = new Map<string, KeyObject>();
  private fetching: Promise<void> | undefined;
  private lastFetch = 0;
  private readonly leeway: number;
  private readonly minInterval: number;

  constructor(private readonly o: TokenVerifierOptions) {
    this.leeway = o.leewaySeconds ?? 60;
    this.minInterval = o.refreshMinIntervalMs ?? 30_000;
  }

  async verify(token: string, now = Date.now()): Promise<Verification> {
    const parts = token.split('.');
    if (parts.length !== 3) return { verified: false, reason: 'not a JWT' };
    const [h = '', p = '', sig = ''] = parts;
    const header = b64json(h);
    const claims = b64json(p);
    if (!header || !claims) return { verified: false, reason: 'unreadable JWT' };
    if (header.alg !== 'RS256') return { verified: false, reason: `algorithm ${String(header.alg)} is not accepted` };
    const kid = typeof header.kid === 'string' ? header.kid : '';
    let key = this.keys.get(kid);
    if (!key) {
      await this.refresh(now);
      key = this.keys.get(kid);
    }
    if (!key) return { verified: false, reason: 'unknown signing key' };
    if (!verify('RSA-SHA256', Buffer.from(`${h}.${p}`), key, Buffer.from(sig, 'base64url')))
      return { verified: false, reason: 'bad signature' };
    if (claims.iss !== this.o.issuer) return { verified: false, reason: 'wrong issuer' };
    const seconds = now / 1000;
    if (typeof claims.exp !== 'number' || claims.exp + this.leeway < seconds) return { verified: false, reason: 'expired' };
    if (typeof claims.nbf === 'number' && claims.nbf - this.leeway > seconds) return { verified: false, reason: 'not yet valid' };
    return { verified: true, claims };
  }

  /** Fetch the key set (shared by concurrent callers; not more often than the floor). */
  refresh(now = Date.now()): Promise<void> {
    if (this.fetching) return this.fetching;
    if (now - this.lastFetch < this.minInterval && this.keys.size > 0) return Promise.resolve();
    this.lastFetch = now;
    this.fetching = this.fetchKeys()
      .catch((err: unknown) => this.o.onError?.(err as Error))
      .finally(() => {
        this.fetching = undefined;
      });
    return this.fetching;
  }

  private async fetchKeys(): Promise<void> {
    const res = await request(this.o.jwksUrl, {
      method: 'GET',
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(this.o.timeoutMs ?? 5000),
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`JWKS ${this.o.jwksUrl} answered ${res.statusCode}`);
    const doc = JSON.parse(text) as { keys?: Jwk[] };
    const keys = new Map<string, KeyObject>();
    for (const jwk of doc.keys ?? []) {
      if (jwk.kty !== 'RSA' || !jwk.n || !jwk.e || (jwk.use !== undefined && jwk.use !== 'sig')) continue;
      keys.set(jwk.kid ?? '', createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' }));
    }
    if (keys.size === 0) throw new Error(`JWKS ${this.o.jwksUrl} holds no RSA signing key`);
    this.keys = keys;
  }
}
