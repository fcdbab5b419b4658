/**
 * Receiver options from the environment (for `main.ts`):
 *   RECEIVER_PORT (default 9400), RECEIVER_HOST (default 127.0.0.1),
 *   RECEIVER_LOGDNA_KEYS `us-south=key1,eu-de=key2`, RECEIVER_IAM_API_KEYS `key1,key2`,
 *   RECEIVER_TOKEN_TTL_SECONDS (default 3600).
 */
import type { ReceiverOptions } from './types';

export class ReceiverEnvError extends Error {
  readonly code = 'ERR_RECEIVER_ENV_INVALID';

  constructor(message: string) {
    super(message);
    this.name = 'ReceiverEnvError';
  }
}

type Env = Record<string, string | undefined>;

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new ReceiverEnvError(`${name}="${raw}" is not valid: expected an integer from ${min} to ${max}`);
  }
  return value;
}

/** `us-south=key1,eu-de=key2`; a key is never echoed in an error. */
function logdnaKeys(raw: string | undefined): Record<string, string> {
  const keys: Record<string, string> = {};
  for (const item of list(raw)) {
    const eq = item.indexOf('=');
    const region = eq < 0 ? '' : item.slice(0, eq).trim();
    const key = eq < 0 ? '' : item.slice(eq + 1).trim();
    if (!/^[a-z0-9][a-z0-9-]*$/.test(region) || key === '') {
      throw new ReceiverEnvError(`RECEIVER_LOGDNA_KEYS is not valid: expected region=key pairs separated by commas`);
    }
    keys[region] = key;
  }
  return keys;
}

export function receiverOptionsFromEnv(env: Env): ReceiverOptions {
  return {
    port: integer(env, 'RECEIVER_PORT', 9400, 0, 65535),
    host: env.RECEIVER_HOST?.trim() || '127.0.0.1',
    logdnaKeys: logdnaKeys(env.RECEIVER_LOGDNA_KEYS),
    iamApiKeys: list(env.RECEIVER_IAM_API_KEYS),
    tokenTtlSeconds: integer(env, 'RECEIVER_TOKEN_TTL_SECONDS', 3600, 1, 24 * 3600),
  };
}
