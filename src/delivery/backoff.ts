/**
 * Exponential backoff with full jitter (a random delay between 0 and base * 2^attempt, capped), so that many
 * gateways retrying after one outage do not come back in step. A server's Retry-After always wins.
 */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  maxMs: number,
  retryAfterMs: number | undefined,
  random = Math.random,
): number {
  if (retryAfterMs !== undefined) return Math.min(Math.max(retryAfterMs, 0), MAX_RETRY_AFTER_MS);
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** A Retry-After longer than this is not believed (it would stall delivery for hours). */
export const MAX_RETRY_AFTER_MS = 10 * 60 * 1000;

/** Retry-After as delay-seconds or an HTTP date (RFC 9110 section 10.2.3); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\s*\d+\s*$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
