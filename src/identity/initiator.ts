import type { Initiator } from '../types';
import type { TokenVerifier } from './token-verifier';

/** The IAM access token claims the audit uses (see shared/reference/code-engine-api.md). */
interface IamClaims {
  iam_id?: unknown;
  sub?: unknown;
  sub_type?: unknown;
  name?: unknown;
  email?: unknown;
  grant_type?: unknown;
  account?: { bss?: unknown };
  exp?: unknown;
  authn?: { iam_id?: unknown; name?: unknown; sub?: unknown };
}

/** What a token says about its bearer; the token itself is never kept in it. */
export interface Identity {
  id: string;
  name: string;
  typeURI: string;
  credentialType: string;
  accountId: string | undefined;
  authnId: string | undefined;
  authnName: string | undefined;
  /** The token's signature, issuer and expiry were checked against IAM's keys (IAM_JWKS_URL). */
  verified: boolean;
}

export const PUBLIC_ACCESS: Identity = Object.freeze({
  id: 'public-access',
  name: 'public-access',
  typeURI: 'service/security/clientid',
  credentialType: 'public-access',
  accountId: undefined,
  authnId: undefined,
  authnName: undefined,
  verified: false,
});

/** A request refused before its headers could be read (malformed): who sent it is not known. */
export const UNKNOWN_INITIATOR: Identity = Object.freeze({
  id: 'unknown',
  name: 'unknown',
  typeURI: 'service/security/clientid',
  credentialType: 'unknown',
  accountId: undefined,
  authnId: undefined,
  authnName: undefined,
  verified: false,
});

const UNREADABLE_TOKEN: Identity = Object.freeze({
  id: 'unknown',
  name: 'unknown',
  typeURI: 'service/security/clientid',
  credentialType: 'token',
  accountId: undefined,
  authnId: undefined,
  authnName: undefined,
  verified: false,
});

const MAX_CLAIM_LENGTH = 256;
const CACHE_LIMIT = 1024;

function str(value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  // Claims come from the caller; bound them and drop control characters before they reach an event.
  const cleaned = value
    .replace(/[\x00-\x1f\x7f]/g, '')
    .trim()
    .slice(0, MAX_CLAIM_LENGTH);
  return cleaned === '' ? undefined : cleaned;
}

function typeUriFor(claims: IamClaims, id: string): string {
  const subType = str(claims.sub_type);
  if (subType === 'ServiceId' || id.startsWith('iam-ServiceId-')) return 'service/security/account/serviceid';
  if (subType === 'CRN' || id.startsWith('crn-')) return 'service/security/clientid';
  if (subType === 'Profile' || id.startsWith('iam-Profile-')) return 'service/security/account/profile';
  return 'service/security/account/user';
}

function credentialTypeFor(claims: IamClaims, typeURI: string): string {
  const grant = str(claims.grant_type) ?? '';
  if (grant.endsWith(':apikey')) return typeURI === 'service/security/account/serviceid' ? 'apikey-serviceid' : 'apikey';
  if (/(passcode|password|authorization_code)$/.test(grant)) return 'user';
  if (grant.endsWith(':cr-token')) return 'certificate';
  return 'token';
}

export function identityFromClaims(claims: IamClaims, verified = false): Identity {
  const id = str(claims.iam_id) ?? str(claims.sub) ?? 'unknown';
  const typeURI = typeUriFor(claims, id);
  const authnId = str(claims.authn?.iam_id);
  const delegated = authnId !== undefined && authnId !== id;
  return {
    id,
    name: str(claims.name) ?? str(claims.email) ?? str(claims.sub) ?? id,
    typeURI,
    credentialType: credentialTypeFor(claims, typeURI),
    accountId: str(claims.account?.bss),
    authnId: delegated ? authnId : undefined,
    authnName: delegated ? (str(claims.authn?.name) ?? str(claims.authn?.sub)) : undefined,
    verified,
  };
}

/** Decode (not verify) the payload of a JWT. Returns undefined for anything that is not one. */
export function decodeJwtPayload(token: string): IamClaims | undefined {
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  if (first <= 0 || second < 0 || token.indexOf('.', second + 1) >= 0) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(token.slice(first + 1, second), 'base64url').toString('utf8'));
    return payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? (payload as IamClaims) : undefined;
  } catch {
    return undefined;
  }
}

/** The token of `Bearer <token>`; the usual exact form is sliced without a regular expression. */
function bearerToken(authorization: string): string | undefined {
  if (authorization.startsWith('Bearer ') && authorization.indexOf(' ', 7) < 0 && authorization.length > 7) return authorization.slice(7);
  return /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];
}

export interface ResolvedIdentity {
  /** What is known at once: the token's claims, not yet verified. */
  identity: Identity;
  /** With IAM_JWKS_URL: the identity once the token is verified (or found not to be). */
  pending: Promise<Identity> | undefined;
}

interface CacheEntry {
  identity: Identity;
  /** Epoch ms after which a verified identity must be checked again (the token's expiry). */
  until: number;
}

/**
 * Identity of a request from its Authorization header. Clients reuse one token for many calls, so decoded
 * (and verified) identities are cached per token, bounded, in memory only; the token is never written anywhere.
 * Verification, when configured, runs beside the proxying: the event waits for it, the call does not.
 */
export class IdentityResolver {
  private readonly cache = new Map<string, CacheEntry>();

  constructor(private readonly verifier?: TokenVerifier) {}

  resolve(authorization: string | undefined, now = Date.now()): ResolvedIdentity {
    if (!authorization) return { identity: PUBLIC_ACCESS, pending: undefined };
    const token = bearerToken(authorization);
    if (!token) return { identity: UNREADABLE_TOKEN, pending: undefined };
    const hit = this.cache.get(token);
    if (hit && hit.until > now) return { identity: hit.identity, pending: undefined };
    const claims = decodeJwtPayload(token);
    const unverified = claims ? identityFromClaims(claims) : UNREADABLE_TOKEN;
    if (!this.verifier || !claims) {
      this.remember(token, unverified, Number.POSITIVE_INFINITY);
      return { identity: unverified, pending: undefined };
    }
    const pending = this.verifier.verify(token, now).then(
      (v) => {
        const exp = typeof claims.exp === 'number' ? claims.exp * 1000 : now;
        const identity = v.verified ? identityFromClaims(v.claims as IamClaims, true) : unverified;
        // A token that failed verification stays unverified: remember that briefly, it may be retried.
        this.remember(token, identity, v.verified ? exp : now + 60_000);
        return identity;
      },
      () => unverified,
    );
    return { identity: unverified, pending };
  }

  private remember(token: string, identity: Identity, until: number): void {
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(token, { identity, until });
  }
}

export function initiatorOf(identity: Identity, address: string, addressType: 'IPv4' | 'IPv6', agent: string): Initiator {
  // Members in canonical (RFC 8785) order, so that the event serialises on the fast path (src/integrity/canonical-json.ts).
  const credential = { type: identity.credentialType, verified: identity.verified };
  const host = { address, addressType, agent };
  if (identity.authnId === undefined && identity.authnName === undefined) {
    return { credential, host, id: identity.id, name: identity.name, typeURI: identity.typeURI };
  }
  return {
    authnId: identity.authnId,
    authnName: identity.authnName,
    credential,
    host,
    id: identity.id,
    name: identity.name,
    typeURI: identity.typeURI,
  };
}
