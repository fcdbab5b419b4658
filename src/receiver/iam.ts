/**
 * The IAM token endpoint (`POST /identity/token`, API key grant) and the store of the tokens it issued, which
 * the Cloud Logs API checks. Tokens are JWT-shaped (readable claims, random signature) and opaque to clients.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { readRawBody, type BodyProgress } from './body';
import { ReceiverError } from './errors';
import { jsonReply, mediaType, type Reply } from './http';

export const APIKEY_GRANT = 'urn:ibm:params:oauth:grant-type:apikey';
const FORM_TYPE = 'application/x-www-form-urlencoded';
const MAX_FORM_BYTES = 64 * 1024;

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time comparison of two secrets. */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

export class TokenStore {
  /** Token digest (the token itself is never kept) -> expiry in epoch ms. */
  private readonly expiries = new Map<string, number>();
  issued = 0;

  constructor(private readonly ttlSeconds: number) {}

  /** `expiresIn` / `expiration` are whole seconds as IAM reports them; the token itself expires at `now + ttl`. */
  issue(now: number): { token: string; expiresIn: number; expiration: number } {
    const expiresAt = now + this.ttlSeconds * 1000;
    for (const [key, expiry] of this.expiries) if (expiry <= now) this.expiries.delete(key);
    const iat = Math.floor(now / 1000);
    const expiresIn = Math.ceil(this.ttlSeconds);
    const expiration = iat + expiresIn;
    const header = { kid: 'receiver', alg: 'RS256' };
    const claims = {
      iam_id: 'iam-ServiceId-receiver',
      id: 'iam-ServiceId-receiver',
      sub_type: 'ServiceId',
      grant_type: APIKEY_GRANT,
      scope: 'ibm openid',
      iat,
      exp: expiration,
      jti: randomUUID(),
    };
    const token = `${base64url(header)}.${base64url(claims)}.${randomBytes(32).toString('base64url')}`;
    this.expiries.set(digest(token).toString('hex'), expiresAt);
    this.issued += 1;
    return { token, expiresIn, expiration };
  }

  /** True when the token was issued here and has not expired. */
  valid(token: string, now: number): boolean {
    const expiry = this.expiries.get(digest(token).toString('hex'));
    return expiry !== undefined && now < expiry;
  }
}

function iamError(errorCode: string, errorMessage: string): Reply {
  return jsonReply(400, {
    errorCode,
    errorMessage,
    context: { requestId: randomUUID(), requestType: 'incoming.Identity_Token', userAgent: '', host: 'iam.receiver' },
  });
}

export interface IamContext {
  apiKeys: readonly string[];
  tokens: TokenStore;
}

export async function handleIam(req: IncomingMessage, ctx: IamContext, progress: BodyProgress): Promise<Reply> {
  if (req.method !== 'POST') {
    req.resume();
    throw new ReceiverError('ERR_METHOD_NOT_ALLOWED', 'Use POST for /identity/token.');
  }
  const body = await readRawBody(req, MAX_FORM_BYTES, progress);
  if (mediaType(req) !== FORM_TYPE) {
    return iamError('BXNIM0109E', `Property missing or empty: the request must be ${FORM_TYPE}.`);
  }
  const form = new URLSearchParams(body.toString('utf8'));
  const grantType = form.get('grant_type');
  if (!grantType) return iamError('BXNIM0109E', 'Property missing or empty: grant_type.');
  if (grantType !== APIKEY_GRANT) return iamError('BXNIM0103E', `Unsupported grant type: ${grantType.slice(0, 100)}.`);
  const apiKey = form.get('apikey');
  if (!apiKey) return iamError('BXNIM0109E', 'Property missing or empty: apikey.');
  if (!ctx.apiKeys.some((known) => sameSecret(known, apiKey))) {
    return iamError('BXNIM0415E', 'Provided API key could not be found.');
  }
  const { token, expiresIn, expiration } = ctx.tokens.issue(Date.now());
  return jsonReply(200, {
    access_token: token,
    refresh_token: 'not_supported',
    token_type: 'Bearer',
    expires_in: expiresIn,
    expiration,
    scope: 'ibm openid',
  });
}
