import { BlockList, isIP } from 'node:net';
import { GatewayError } from './errors';
import { compileSchemaFile, createAjv, readSchemaFile } from './schemas';
import type { ActionEdition, Region } from './types';

/** The environment variables, as validated and coerced by schemas/config.schema.json. */
export interface RawSettings {
  PORT: number;
  HOST: string;
  ADMIN_PORT: number;
  ADMIN_HOST?: string;
  CE_REGION: Region;
  CE_API_URL: string;
  CE_KUBE_API_URL: string;
  CE_ACCOUNT_ID?: string;
  CE_NAMESPACE_MAP: string;
  ACTION_CATALOG: ActionEdition;
  AT_SINK: string;
  AT_FILE_DIR: string;
  AT_FILE_FSYNC: boolean;
  CAPTURE_MAX_BYTES: number;
  AUDIT_RESPONSE_DATA: 'all' | 'failures' | 'none';
  UPSTREAM_CONNECT_TIMEOUT_MS: number;
  UPSTREAM_HEADERS_TIMEOUT_MS: number;
  UPSTREAM_BODY_TIMEOUT_MS: number;
  UPSTREAM_CONNECTIONS: number;
  TRUSTED_PROXIES: string;
  DRAIN_TIMEOUT_MS: number;
  LOG_LEVEL: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export interface UpstreamTarget {
  /** `https://host[:port]`: what the connection pool connects to. */
  origin: string;
  /** Base path prepended to every forwarded path ('' for none). */
  basePath: string;
  /** Host header value sent upstream. */
  host: string;
}

export interface GatewayConfig {
  port: number;
  host: string;
  adminPort: number;
  adminHost: string;
  region: Region;
  upstreams: { api: UpstreamTarget; kube: UpstreamTarget };
  accountId: string | undefined;
  namespaceProjects: ReadonlyMap<string, string>;
  actionEdition: ActionEdition;
  sinks: readonly 'file'[];
  fileDir: string;
  fileFsync: boolean;
  captureMaxBytes: number;
  responseData: 'all' | 'failures' | 'none';
  upstream: { connectTimeoutMs: number; headersTimeoutMs: number; bodyTimeoutMs: number; connections: number };
  trustedProxies: BlockList | undefined;
  drainTimeoutMs: number;
  logLevel: RawSettings['LOG_LEVEL'];
}

interface PropertySchema {
  type?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  description?: string;
  'x-accepts'?: string;
  $ref?: string;
  default?: unknown;
}

interface ConfigSchemaDoc {
  properties: Record<string, PropertySchema>;
  definitions: Record<string, PropertySchema>;
}

const CONFIG_SCHEMA_FILE = 'config.schema.json';

function configSchema(): ConfigSchemaDoc {
  return readSchemaFile(CONFIG_SCHEMA_FILE) as ConfigSchemaDoc;
}

/** Every setting the gateway reads, with its description and default: the README table is checked against it. */
export function describeSettings(): Array<{ name: string; description: string; default: unknown }> {
  const schema = configSchema();
  return Object.entries(schema.properties).map(([name, prop]) => ({
    name,
    description: prop.description ?? '',
    default: prop.default ?? resolveRef(schema, prop).default,
  }));
}

function resolveRef(schema: ConfigSchemaDoc, prop: PropertySchema): PropertySchema {
  if (!prop.$ref) return prop;
  const name = prop.$ref.replace('#/definitions/', '');
  return { ...(schema.definitions[name] ?? {}), ...prop };
}

function accepted(prop: PropertySchema): string {
  if (prop['x-accepts']) return prop['x-accepts'];
  if (prop.enum) return `one of ${prop.enum.join(', ')}`;
  if (prop.type === 'integer') return `an integer from ${prop.minimum ?? '-inf'} to ${prop.maximum ?? 'inf'}`;
  if (prop.type === 'boolean') return 'true or false';
  return 'a non-empty string';
}

/** Every configuration problem found, reported together so one restart fixes them all. */
class ConfigProblems {
  private readonly byName = new Map<string, string>();

  add(name: string, value: unknown, expected: string): void {
    if (!this.byName.has(name)) this.byName.set(name, `${name}=${JSON.stringify(value)} is not valid: expected ${expected}.`);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  throwIfAny(): void {
    if (this.byName.size > 0) throw new GatewayError('ERR_CONFIG_INVALID', `Invalid configuration: ${[...this.byName.values()].join(' ')}`);
  }
}

const DECIMAL_INTEGER = /^\d+$/;

function readSettings(env: NodeJS.ProcessEnv, problems: ConfigProblems): RawSettings {
  const schema = configSchema();
  const input: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(schema.properties)) {
    const value = env[name]?.trim();
    if (value === undefined || value === '') continue;
    const prop = resolveRef(schema, raw);
    // ajv's coercion would also take 0x1F90 or 1e3 for an integer; settings are plain decimals.
    if (prop.type === 'integer' && !DECIMAL_INTEGER.test(value)) problems.add(name, value, accepted(prop));
    else input[name] = value;
  }
  const given = { ...input };
  const validate = compileSchemaFile<RawSettings>(createAjv({ coerceTypes: true, useDefaults: true }), CONFIG_SCHEMA_FILE);
  if (validate(input)) return input as unknown as RawSettings;
  for (const e of validate.errors ?? []) {
    const name = e.instancePath.replace(/^\//, '');
    if (name) problems.add(name, given[name], accepted(resolveRef(schema, schema.properties[name] ?? {})));
  }
  // Carry on with defaults in place of the bad values, so later checks can report their problems too.
  const rest: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(given)) if (!problems.has(name)) rest[name] = value;
  if (!validate(rest)) throw new GatewayError('ERR_CONFIG_INVALID', 'Invalid configuration: unexpected validation failure.');
  return rest as unknown as RawSettings;
}

/** Read the settings named in the schema from an environment; empty values count as unset. */
export function loadSettings(env: NodeJS.ProcessEnv): RawSettings {
  const problems = new ConfigProblems();
  const settings = readSettings(env, problems);
  problems.throwIfAny();
  return settings;
}

const UPSTREAM_EXPECTED = 'an http(s) URL with no query or fragment, optionally containing {region}';

function upstreamTarget(template: string, region: Region): UpstreamTarget | undefined {
  let url: URL;
  try {
    url = new URL(template.replaceAll('{region}', region));
  } catch {
    return undefined;
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash || url.username || url.password) return undefined;
  return { origin: url.origin, basePath: url.pathname.replace(/\/+$/, ''), host: url.host };
}

export function resolveUpstream(name: string, template: string, region: Region): UpstreamTarget {
  const target = upstreamTarget(template, region);
  if (!target) {
    const problems = new ConfigProblems();
    problems.add(name, template, UPSTREAM_EXPECTED);
    problems.throwIfAny();
  }
  return target as UpstreamTarget;
}

function parseNamespaceMap(value: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const pair of value.split(',')) {
    const [ns, project] = pair.split('=').map((s) => s.trim());
    if (ns && project) map.set(ns, project);
  }
  return map;
}

const TRUSTED_PROXIES_EXPECTED = 'a comma list of IP addresses or CIDR ranges, e.g. 10.0.0.0/8,127.0.0.1';

function parseTrustedProxies(value: string, problems: ConfigProblems): BlockList | undefined {
  const entries = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (entries.length === 0) return undefined;
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', prefix] = entry.split('/');
    const family = isIP(address);
    const bits = prefix === undefined ? undefined : Number(prefix);
    if (family === 0 || (bits !== undefined && (!Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)))) {
      problems.add('TRUSTED_PROXIES', value, TRUSTED_PROXIES_EXPECTED);
      return undefined;
    }
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address, type);
    else list.addSubnet(address, bits, type);
  }
  return list;
}

/** Validate the whole configuration once; throws GatewayError('ERR_CONFIG_INVALID') naming every bad setting. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const problems = new ConfigProblems();
  const s = readSettings(env, problems);
  const region = s.CE_REGION;
  const adminHost = s.ADMIN_HOST ?? s.HOST;
  if (s.PORT !== 0 && s.PORT === s.ADMIN_PORT && adminHost === s.HOST) {
    problems.add('ADMIN_PORT', String(s.ADMIN_PORT), `a port different from PORT (${s.PORT}): admin routes never share the proxy port`);
  }
  const api = upstreamTarget(s.CE_API_URL, region);
  if (!api) problems.add('CE_API_URL', s.CE_API_URL, UPSTREAM_EXPECTED);
  const kube = upstreamTarget(s.CE_KUBE_API_URL, region);
  if (!kube) problems.add('CE_KUBE_API_URL', s.CE_KUBE_API_URL, UPSTREAM_EXPECTED);
  const trustedProxies = parseTrustedProxies(s.TRUSTED_PROXIES, problems);
  problems.throwIfAny();
  return {
    port: s.PORT,
    host: s.HOST,
    adminPort: s.ADMIN_PORT,
    adminHost,
    region,
    upstreams: { api: api as UpstreamTarget, kube: kube as UpstreamTarget },
    accountId: s.CE_ACCOUNT_ID,
    namespaceProjects: parseNamespaceMap(s.CE_NAMESPACE_MAP),
    actionEdition: s.ACTION_CATALOG,
    sinks: ['file'],
    fileDir: s.AT_FILE_DIR,
    fileFsync: s.AT_FILE_FSYNC,
    captureMaxBytes: s.CAPTURE_MAX_BYTES,
    responseData: s.AUDIT_RESPONSE_DATA,
    upstream: {
      connectTimeoutMs: s.UPSTREAM_CONNECT_TIMEOUT_MS,
      headersTimeoutMs: s.UPSTREAM_HEADERS_TIMEOUT_MS,
      bodyTimeoutMs: s.UPSTREAM_BODY_TIMEOUT_MS,
      connections: s.UPSTREAM_CONNECTIONS,
    },
    trustedProxies,
    drainTimeoutMs: s.DRAIN_TIMEOUT_MS,
    logLevel: s.LOG_LEVEL,
  };
}
