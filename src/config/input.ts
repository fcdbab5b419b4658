import { GatewayError } from '../errors';
import { loadConfig, type GatewayConfig } from './config';
import type { RawSettings } from './settings';

/** The names of the documented settings (the README's configuration table, schemas/config.schema.json). */
export type SettingName = keyof {
  [K in keyof RawSettings as K extends `${string}_${string}` ? (`${string}_${string}` extends K ? never : K) : K]: true;
};

/**
 * The settings as environment variables give them: every value a string, unset or empty meaning the default.
 * Per-region settings (AT_INGESTION_KEY_<REGION>, AT_CLOUD_LOGS_URL_<REGION>) are accepted too.
 */
export type GatewaySettings = { readonly [K in SettingName]?: string } & {
  readonly [perRegion: `AT_INGESTION_KEY_${string}` | `AT_CLOUD_LOGS_URL_${string}`]: string | undefined;
};

function isConfig(value: unknown): value is GatewayConfig {
  const c = value as Partial<GatewayConfig> | null;
  return typeof c === 'object' && c !== null && c.regions instanceof Map && typeof c.spool === 'object' && Array.isArray(c.sinks);
}

/**
 * loadConfig for library callers: the settings as a record of strings (process.env, or an object literal whose
 * names TypeScript checks against GatewaySettings), validated once, with the same errors as at start-up.
 */
export function loadGatewayConfig(settings: GatewaySettings | NodeJS.ProcessEnv = process.env): GatewayConfig {
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
    throw new GatewayError(
      'ERR_CONFIG_INVALID',
      `Invalid configuration: expected the settings as a record of strings (CE_REGION, SPOOL_DIR, ...); got ${settings === null ? 'null' : Array.isArray(settings) ? 'an array' : typeof settings}.`,
    );
  }
  const notText = Object.entries(settings).filter(([, v]) => v !== undefined && typeof v !== 'string');
  if (notText.length > 0) {
    throw new GatewayError(
      'ERR_CONFIG_INVALID',
      `Invalid configuration: settings are strings, as in the environment: ${notText.map(([k, v]) => `${k} is a ${typeof v}`).join(', ')}.`,
    );
  }
  return loadConfig(settings as NodeJS.ProcessEnv);
}

/** A configuration from what a library caller passes: the result of loadConfig, or the settings themselves. */
export function configFrom(input: GatewayConfig | GatewaySettings): GatewayConfig {
  return isConfig(input) ? input : loadGatewayConfig(input);
}
