/** Receiver options with their defaults applied and checked. */
import type { LineLimitMode, ReceiverOptions } from './types';

export interface Limits {
  maxBodyBytes: number;
  maxLineBytes: number;
  lineLimitMode: LineLimitMode;
  cloudLogsMaxLogBytes: number;
}

export interface ResolvedOptions extends Limits {
  port: number;
  host: string;
  logdnaKeys: Readonly<Record<string, string>>;
  iamApiKeys: readonly string[];
  tokenTtlSeconds: number;
}

export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024;
export const DEFAULT_CLOUD_LOGS_MAX_LOG_BYTES = 32 * 1024;
export const DEFAULT_TOKEN_TTL_SECONDS = 3600;

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`receiver option ${name} must be a positive number (got ${String(v)})`);
  return v;
}

export function resolveOptions(options: ReceiverOptions): ResolvedOptions {
  const port = options.port ?? 0;
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new RangeError(`receiver option port must be 0..65535`);
  const lineLimitMode = options.lineLimitMode ?? 'reject';
  if (lineLimitMode !== 'reject' && lineLimitMode !== 'truncate') throw new RangeError(`receiver option lineLimitMode is invalid`);
  return {
    port,
    host: options.host ?? '127.0.0.1',
    logdnaKeys: { ...options.logdnaKeys },
    iamApiKeys: [...(options.iamApiKeys ?? [])],
    tokenTtlSeconds: positive('tokenTtlSeconds', options.tokenTtlSeconds, DEFAULT_TOKEN_TTL_SECONDS),
    maxBodyBytes: Math.floor(positive('maxBodyBytes', options.maxBodyBytes, DEFAULT_MAX_BODY_BYTES)),
    maxLineBytes: Math.floor(positive('maxLineBytes', options.maxLineBytes, DEFAULT_MAX_LINE_BYTES)),
    lineLimitMode,
    cloudLogsMaxLogBytes: Math.floor(positive('cloudLogsMaxLogBytes', options.cloudLogsMaxLogBytes, DEFAULT_CLOUD_LOGS_MAX_LOG_BYTES)),
  };
}
