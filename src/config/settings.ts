import { GatewayError } from '../errors';
import { compileSchemaFile, createAjv, readSchemaFile } from '../schemas';
import type { ActionEdition, Region, ResponseDataPolicy } from '../types';

/** The environment variables, as validated and coerced by schemas/config.schema.json. */
export interface RawSettings {
  PORT: number;
  HOST: string;
  ADMIN_PORT: number;
  ADMIN_HOST: string;
  ADMIN_TOKEN?: string;
  TLS_CERT_FILE?: string;
  TLS_KEY_FILE?: string;
  CE_REGION: Region;
  CE_REGIONS?: string;
  CE_API_URL: string;
  CE_KUBE_API_URL: string;
  CE_ACCOUNT_ID?: string;
  CE_NAMESPACE_MAP: string;
  ACTION_CATALOG: ActionEdition;
  AT_SINK: string;
  AT_FILE_DIR: string;
  AT_FILE_FSYNC: boolean;
  AT_LOGDNA_URL: string;
  AT_LOGDNA_HOSTNAME?: string;
  AT_INGESTION_KEY?: string;
  AT_CLOUD_LOGS_URL?: string;
  AT_CLOUD_LOGS_APPLICATION: string;
  AT_CLOUD_LOGS_SUBSYSTEM: string;
  IBMCLOUD_API_KEY?: string;
  IAM_TOKEN_URL: string;
  SPOOL_DIR: string;
  SPOOL_FSYNC: boolean;
  SPOOL_MAX_BYTES: number;
  SPOOL_SEGMENT_BYTES: number;
  SPOOL_HOLD_MS: number;
  SPOOL_FULL_POLICY: 'reject-writes' | 'reject-all' | 'drop-oldest';
  BATCH_MAX_EVENTS: number;
  BATCH_MAX_BYTES: number;
  BATCH_MAX_WAIT_MS: number;
  RETRY_BASE_MS: number;
  RETRY_MAX_MS: number;
  SINK_TIMEOUT_MS: number;
  SINK_UNHEALTHY_AFTER_MS: number;
  DELIVERY_THREAD: 'worker' | 'main';
  DELIVERY_PACING: 'calls-first' | 'off';
  CAPTURE_MAX_BYTES: number;
  AUDIT_RESPONSE_DATA: ResponseDataPolicy;
  AUDIT_CHECKPOINT_INTERVAL_MS: number;
  AUDIT_SIGNING_KEY_FILE?: string;
  MAX_BODY_BYTES: number;
  MAX_HEADER_BYTES: number;
  MAX_HEADERS: number;
  HEADERS_TIMEOUT_MS: number;
  REQUEST_TIMEOUT_MS: number;
  KEEPALIVE_TIMEOUT_MS: number;
  MAX_CONNECTIONS: number;
  UPSTREAM_CONNECT_TIMEOUT_MS: number;
  UPSTREAM_HEADERS_TIMEOUT_MS: number;
  UPSTREAM_BODY_TIMEOUT_MS: number;
  UPSTREAM_CONNECTIONS: number;
  UPSTREAM_CA_FILE?: string;
  TRUSTED_PROXIES: string;
  IAM_JWKS_URL?: string;
  IAM_ISSUER: string;
  DRAIN_TIMEOUT_MS: number;
  HEAP_GROWING_PERCENT: number;
  LOG_LEVEL: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Per-region settings matched by the schema's patternProperties (AT_INGESTION_KEY_US_SOUTH, ...). */
  [perRegion: `${string}_${string}`]: unknown;
}

interface PropertySchema {
  type?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  description?: string;
  'x-accepts'?: string;
  'x-secret'?: boolean;
  'x-name'?: string;
  $ref?: string;
  default?: unknown;
}

interface ConfigSchemaDoc {
  properties: Record<string, PropertySchema>;
  patternProperties: Record<string, PropertySchema>;
  definitions: Record<string, PropertySchema>;
}

const CONFIG_SCHEMA_FILE = 'config.schema.json';

function configSchema(): ConfigSchemaDoc {
  return readSchemaFile(CONFIG_SCHEMA_FILE) as ConfigSchemaDoc;
}

function resolveRef(schema: ConfigSchemaDoc, prop: PropertySchema): PropertySchema {
  if (!prop.$ref) return prop;
  const name = prop.$ref.replace('#/definitions/', '');
  return { ...(schema.definitions[name] ?? {}), ...prop };
}

/** The schema entry of a setting: a named property, or a per-region pattern. */
function settingSchema(schema: ConfigSchemaDoc, name: string): PropertySchema | undefined {
  const named = schema.properties[name];
  if (named) return resolveRef(schema, named);
  for (const [pattern, prop] of Object.entries(schema.patternProperties))
    if (new RegExp(pattern).test(name)) return resolveRef(schema, prop);
  return undefined;
}

/** Every setting the gateway reads, with its description and default: the README table is checked against it. */
export function describeSettings(): Array<{ name: string; description: string; default: unknown }> {
  const schema = configSchema();
  const rows = Object.entries(schema.properties).map(([name, prop]) => ({
    name,
    description: prop.description ?? '',
    default: resolveRef(schema, prop).default,
  }));
  for (const prop of Object.values(schema.patternProperties)) {
    rows.push({ name: prop['x-name'] ?? '', description: prop.description ?? '', default: undefined });
  }
  return rows;
}

function accepted(prop: PropertySchema): string {
  if (prop['x-accepts']) return prop['x-accepts'];
  if (prop.enum) return `one of ${prop.enum.join(', ')}`;
  if (prop.type === 'integer') return `an integer from ${prop.minimum ?? '-inf'} to ${prop.maximum ?? 'inf'}`;
  if (prop.type === 'boolean') return 'true or false';
  return 'a non-empty string';
}

/** Every configuration problem found, reported together so one restart fixes them all. */
export class ConfigProblems {
  private readonly byName = new Map<string, string>();

  /** `secret`: the value is a credential and is never repeated. */
  add(name: string, value: unknown, expected: string, secret = false): void {
    if (this.byName.has(name)) return;
    const shown = value === undefined ? 'is missing' : `=${secret ? '(hidden)' : JSON.stringify(value)} is not valid`;
    this.byName.set(name, value === undefined ? `${name} is missing: ${expected}.` : `${name}${shown}: expected ${expected}.`);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  throwIfAny(): void {
    if (this.byName.size > 0) throw new GatewayError('ERR_CONFIG_INVALID', `Invalid configuration: ${[...this.byName.values()].join(' ')}`);
  }
}

const DECIMAL_INTEGER = /^\d+$/;

/** Validate and coerce the settings; problems are collected, bad values replaced by their defaults. */
export function readSettings(env: NodeJS.ProcessEnv, problems: ConfigProblems): RawSettings {
  const schema = configSchema();
  const input: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(env)) {
    const value = raw?.trim();
    if (value === undefined || value === '') continue;
    const prop = settingSchema(schema, name);
    if (!prop) continue;
    // ajv's coercion would also take 0x1F90 or 1e3 for an integer; settings are plain decimals.
    if (prop.type === 'integer' && !DECIMAL_INTEGER.test(value)) problems.add(name, value, accepted(prop), prop['x-secret']);
    else input[name] = value;
  }
  const given = { ...input };
  const validate = compileSchemaFile<RawSettings>(createAjv({ coerceTypes: true, useDefaults: true }), CONFIG_SCHEMA_FILE);
  if (validate(input)) return input as unknown as RawSettings;
  for (const e of validate.errors ?? []) {
    const name = e.instancePath.replace(/^\//, '');
    const prop = settingSchema(schema, name);
    if (name && prop) problems.add(name, given[name], accepted(prop), prop['x-secret']);
  }
  // Carry on with defaults in place of the bad values, so later checks can report their problems too.
  const rest: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(given)) if (!problems.has(name)) rest[name] = value;
  if (!validate(rest)) throw new GatewayError('ERR_CONFIG_INVALID', 'Invalid configuration: unexpected validation failure.');
  return rest as unknown as RawSettings;
}

/** The variables of an environment that are settings (what another thread needs to load the same config). */
export function settingsEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const schema = configSchema();
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined && settingSchema(schema, name)) out[name] = value;
  return out;
}

/** Read the settings named in the schema from an environment; empty values count as unset. */
export function loadSettings(env: NodeJS.ProcessEnv): RawSettings {
  const problems = new ConfigProblems();
  const settings = readSettings(env, problems);
  problems.throwIfAny();
  return settings;
}

/** Environment variable suffix of a region: us-south -> US_SOUTH. */
export function regionEnvSuffix(region: Region): string {
  return region.toUpperCase().replace(/-/g, '_');
}
