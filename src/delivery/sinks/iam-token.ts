import { Agent, request } from 'undici';
import { closeAgent, errorCode, errorMessage, readTextSafely, statusText } from './http-result';

export interface IamTokenProviderOptions {
  /** `https://iam.cloud.ibm.com/identity/token` */
  url: string;
  apiKey: string;
  /** Limit for one token request (independent of the callers' signals, since callers share it). */
  timeoutMs: number;
}

/** A failed token request. `retryable`: network errors, 429 and 5xx; a refused API key (400/401/403) is not. */
export class IamTokenError extends Error {
  readonly retryable: boolean;
  readonly status: number | undefined;

  constructor(message: string, retryable: boolean, status?: number) {
    super(message);
    this.name = 'IamTokenError';
    this.retryable = retryable;
    this.status = status;
  }
}

interface Cached {
  token: string;
  /** Refresh from this time on (epoch ms). */
  refreshAt: number;
  /** Not usable from this time on. */
  expiresAt: number;
  /** Until then a failed refresh falls back to this token (a request needs some of its life left). */
  fallbackUntil: number;
}

const GRANT = 'urn:ibm:params:oauth:grant-type:apikey';
const MAX_MARGIN_MS = 5 * 60 * 1000;
const MIN_MARGIN_MS = 10 * 1000;

/**
 * How long before expiry to refresh: 10% of the lifetime or 5 minutes, whichever is smaller, but at least
 * 10 s (for an hour-long IAM token: 5 minutes). Lifetimes under 20 s (tests) refresh at half-life instead.
 */
export function refreshMarginMs(lifetimeMs: number): number {
  return Math.max(Math.min(lifetimeMs * 0.1, MAX_MARGIN_MS), Math.min(MIN_MARGIN_MS, lifetimeMs / 2));
}

/**
 * IBM Cloud IAM access tokens for an API key: cached, refreshed ahead of expiry, one request at a time
 * (concurrent callers share it). Shared by every Cloud Logs sink; whoever creates it closes it.
 */
export class IamTokenProvider {
  private cached: Cached | undefined;
  private inFlight: Promise<string> | undefined;
  private readonly agent = new Agent({ keepAliveTimeout: 10_000, connect: { rejectUnauthorized: true } });

  constructor(private readonly options: IamTokenProviderOptions) {}

  /** A valid token; waits for a refresh only when needed. `signal` only stops this caller's wait. */
  token(signal: AbortSignal): Promise<string> {
    const now = Date.now();
    const cached = this.cached;
    if (cached && now < cached.refreshAt) return Promise.resolve(cached.token);
    this.inFlight ??= this.refresh().finally(() => {
      this.inFlight = undefined;
    });
    return abortable(this.inFlight, signal);
  }

  /** Forget the cached token (the API refused it). With `token`, only if that is still the cached one. */
  invalidate(token?: string): void {
    if (token === undefined || this.cached?.token === token) this.cached = undefined;
  }

  close(): Promise<void> {
    return closeAgent(this.agent);
  }

  private async refresh(): Promise<string> {
    try {
      const fresh = await this.fetch();
      this.cached = fresh;
      return fresh.token;
    } catch (err) {
      // A failed early refresh is not an outage: the current token is still good for a while.
      const cached = this.cached;
      if (cached && err instanceof IamTokenError && err.retryable && Date.now() < cached.fallbackUntil) return cached.token;
      throw err;
    }
  }

  private async fetch(): Promise<Cached> {
    const started = Date.now();
    const form = new URLSearchParams({ grant_type: GRANT, apikey: this.options.apiKey }).toString();
    let status: number;
    let text: string;
    try {
      const res = await request(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form,
        signal: AbortSignal.timeout(this.options.timeoutMs),
        dispatcher: this.agent,
      });
      status = res.statusCode;
      text = await readTextSafely(res.body);
    } catch (err) {
      throw new IamTokenError(this.clean(`IAM token request failed (${errorCode(err)}): ${errorMessage(err)}`), true);
    }
    const body = parseObject(text);
    if (status !== 200) {
      const code = typeof body?.errorCode === 'string' ? `${body.errorCode} ` : '';
      const message = typeof body?.errorMessage === 'string' ? body.errorMessage : text.slice(0, 300);
      const retryable = status === 429 || status >= 500;
      throw new IamTokenError(this.clean(`IAM answered ${statusText(status)}: ${code}${message}`.trim()), retryable, status);
    }
    const token = body?.access_token;
    if (typeof token !== 'string' || token === '') throw new IamTokenError('IAM answered 200 without an access_token', true, status);
    const expiresAt = expiryOf(body, started);
    const lifetime = Math.max(0, expiresAt - started);
    return {
      token,
      expiresAt,
      refreshAt: expiresAt - refreshMarginMs(lifetime),
      fallbackUntil: expiresAt - Math.min(10_000, lifetime / 10),
    };
  }

  /** Error messages never carry the API key, even if IAM echoed it. */
  private clean(message: string): string {
    const key = this.options.apiKey;
    return key.length >= 4 ? message.split(key).join('[REDACTED]') : message;
  }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** `expires_in` (relative, immune to clock skew) counted from when the request was sent; else `expiration`. */
function expiryOf(body: Record<string, unknown> | undefined, started: number): number {
  const expiresIn = body?.expires_in;
  if (typeof expiresIn === 'number' && expiresIn > 0) return started + expiresIn * 1000;
  const expiration = body?.expiration;
  if (typeof expiration === 'number' && expiration > 0) return expiration * 1000;
  return started + 60 * 60 * 1000;
}

/** The shared promise, or this caller's abort, whichever comes first. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}
