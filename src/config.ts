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

/** Read the settings named in the schema from an environment; empty values count as unset. */
export function loadSettings(env: NodeJS.ProcessEnv): RawSettings {
  const schema = configSchema();
  const input: Record<string, unknown> = {};
  for (const name of Object.keys(schema.properties)) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') input[name] = value.trim();
  }
  const given = { ...input };
  const ajv = createAjv({ coerceTypes: true, useDefaults: true });
  const validate = compileSchemaFile<RawSettings>(ajv, CONFIG_SCHEMA_FILE);
  if (!validate(input)) {
    const problems = new Map<string, string>();
    for (const e of validate.errors ?? []) {
      const name = e.instancePath.replace(/^\//, '');
      if (!name || problems.has(name)) continue;
      const prop = resolveRef(schema, schema.properties[name] ?? {});
      problems.set(name, `${name}=${JSON.stringify(given[name])} is not valid: expected ${accepted(prop)}.`);
    }
    throw new GatewayError('ERR_CONFIG_INVALID', `Invalid configuration: ${[...problems.values()].join(' ')}`);
  }
  return input as unknown as RawSettings;
}

function invalid(name: string, value: string, expected: string): GatewayError {
  return new GatewayError(
    'ERR_CONFIG_INVALID',
    `Invalid configuration: ${name}=${JSON.stringify(value)} is not valid: expected ${expected}.`,
  );
}

export function resolveUpstream(name: string, template: string, region: Region): UpstreamTarget {
  const expected = 'an http(s) URL with no query or fragment, optionally containing {region}';
  let url: URL;
  try {
    url = new URL(template.replaceAll('{region}', region));
  } catch {
    throw invalid(name, template, expected);
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash || url.username || url.password) {
    throw invalid(name, template, expected);
  }
  return { origin: url.origin, basePath: url.pathname.replace(/\/+$/, ''), host: url.host };
}

function parseNamespaceMap(value: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const pair of value.split(',')) {
    const [ns, project] = pair.split('=').map((s) => s.trim());
    if (ns && project) map.set(ns, project);
  }
  return map;
}

function parseTrustedProxies(value: string): BlockList | undefined {
  const entries = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (entries.length === 0) return undefined;
  const list = new BlockList();
  const expected = 'a comma list of IP addresses or CIDR ranges, e.g. 10.0.0.0/8,127.0.0.1';
  for (const entry of entries) {
    const [address = '', prefix] = entry.split('/');
    const family = isIP(address);
    if (family === 0) throw invalid('TRUSTED_PROXIES', value, expected);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) {
      list.addAddress(address, type);
      continue;
    }
    const bits = Number(prefix);
    if (!Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)) throw invalid('TRUSTED_PROXIES', value, expected);
    list.addSubnet(address, bits, type);
  }
  return list;
}

/** Validate the whole configuration once; throws GatewayError('ERR_CONFIG_INVALID') naming the bad setting. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const s = loadSettings(env);
  const region = s.CE_REGION;
  const adminHost = s.ADMIN_HOST ?? s.HOST;
  if (s.PORT !== 0 && s.PORT === s.ADMIN_PORT && adminHost === s.HOST) {
    throw invalid('ADMIN_PORT', String(s.ADMIN_PORT), `a port different from PORT (${s.PORT}): admin routes never share the proxy port`);
  }
  return {
    port: s.PORT,
    host: s.HOST,
    adminPort: s.ADMIN_PORT,
    adminHost,
    region,
    upstreams: {
      api: resolveUpstream('CE_API_URL', s.CE_API_URL, region),
      kube: resolveUpstream('CE_KUBE_API_URL', s.CE_KUBE_API_URL, region),
    },
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
    trustedProxies: parseTrustedProxies(s.TRUSTED_PROXIES),
    logLevel: s.LOG_LEVEL,
  };
}
