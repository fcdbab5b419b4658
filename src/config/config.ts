import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { hostname } from 'node:os';
import { BlockList, isIP } from 'node:net';
import { signingKeyFromPem, SigningKeyError, type SigningKey } from '../integrity/signing-key';
import type { ActionEdition, Region, ResponseDataPolicy } from '../types';
import { ConfigProblems, readSettings, regionEnvSuffix, settingsEnv, type RawSettings } from './settings';

export interface UpstreamTarget {
  /** `https://host[:port]`: what the connection pool connects to. */
  origin: string;
  /** Base path prepended to every forwarded path ('' for none). */
  basePath: string;
  /** Host header value sent upstream. */
  host: string;
}

export type SinkName = 'file' | 'stdout' | 'logdna' | 'cloud-logs';
export type SpoolFullPolicy = RawSettings['SPOOL_FULL_POLICY'];

export interface RegionConfig {
  region: Region;
  upstreams: { api: UpstreamTarget; kube: UpstreamTarget };
  /** LogDNA ingest URL and ingestion key of this region (when the logdna sink is on). */
  logdna: { url: string; ingestionKey: string } | undefined;
  /** IBM Cloud Logs ingress URL of this region (when the cloud-logs sink is on). */
  cloudLogsUrl: string | undefined;
}

/** Limits on what clients may send: each refused with a clear status and an event. */
function readPem(name: string, file: string | undefined, problems: ConfigProblems, marker: RegExp): Buffer | undefined {
  if (!file) return undefined;
  try {
    const pem = readFileSync(file);
    if (!marker.test(pem.toString('latin1'))) {
      problems.add(name, file, `a readable PEM file (${marker.source.replace(/\\/g, '')})`);
      return undefined;
    }
    return pem;
  } catch (err) {
    problems.add(name, file, `a readable PEM file (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
    return undefined;
  }
}

/** AUDIT_SIGNING_KEY_FILE, read and checked once: an unreadable or wrong key stops the start, naming the setting. */
function readSigningKey(file: string | undefined, problems: ConfigProblems): SigningKey | undefined {
  if (!file) return undefined;
  const expected = (why: string): string => `an Ed25519 private key in PKCS#8 PEM, as ce-audit keygen writes it (${why})`;
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    problems.add('AUDIT_SIGNING_KEY_FILE', file, expected(`the file cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`));
    return undefined;
  }
  try {
    return signingKeyFromPem(pem);
  } catch (err) {
    if (!(err instanceof SigningKeyError)) throw err;
    problems.add('AUDIT_SIGNING_KEY_FILE', file, expected(err.message));
    return undefined;
  }
}

export interface ClientLimits {
  maxBodyBytes: number;
  maxHeaderBytes: number;
  maxHeaders: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

export interface GatewayConfig {
  port: number;
  host: string;
  adminPort: number;
  adminHost: string;
  adminToken: string | undefined;
  /** The proxy listener terminates TLS with these (PEM), when set. */
  tls: { cert: Buffer; key: Buffer } | undefined;
  limits: ClientLimits;
  /** Extra certificate authorities for the upstreams (PEM), added to the system ones. */
  upstreamCa: Buffer | undefined;
  /** Token verification, when IAM_JWKS_URL is set. */
  jwks: { url: string; issuer: string } | undefined;
  /** The default region: calls without a /regions/<region>/ prefix. */
  region: Region;
  /** Every region fronted, the default first. */
  regions: ReadonlyMap<Region, RegionConfig>;
  accountId: string | undefined;
  namespaceProjects: ReadonlyMap<string, string>;
  actionEdition: ActionEdition;
  sinks: readonly SinkName[];
  fileDir: string;
  fileFsync: boolean;
  logdnaHostname: string;
  cloudLogs: { application: string; subsystem: string; apiKey: string | undefined; iamTokenUrl: string };
  spool: { dir: string; fsync: boolean; maxBytes: number; segmentBytes: number; holdMs: number; fullPolicy: SpoolFullPolicy };
  batch: { maxEvents: number; maxBytes: number; maxWaitMs: number };
  retry: { baseMs: number; maxMs: number };
  sinkTimeoutMs: number;
  sinkUnhealthyAfterMs: number;
  deliveryThread: 'worker' | 'main';
  deliveryPacing: 'calls-first' | 'off';
  captureMaxBytes: number;
  responseData: ResponseDataPolicy;
  /** The audit chain's checkpoints: how often, and the key that signs them (unsigned without one). */
  integrity: { checkpointIntervalMs: number; signingKey: SigningKey | undefined };
  upstream: { connectTimeoutMs: number; headersTimeoutMs: number; bodyTimeoutMs: number; connections: number };
  trustedProxies: BlockList | undefined;
  drainTimeoutMs: number;
  /** V8's heap growing percent for this process (0: V8's own heuristics); applied by the entry point. */
  heapGrowingPercent: number;
  logLevel: RawSettings['LOG_LEVEL'];
  /** Every credential in the configuration, so that any text leaving the gateway can be scrubbed of them. */
  secrets: readonly string[];
  /** The settings as given (strings), from which the delivery thread loads the same configuration. */
  sourceEnv: Readonly<Record<string, string>>;
}

const URL_EXPECTED = 'an http(s) URL with no query or fragment, optionally containing {region}';

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
    problems.add(name, template, URL_EXPECTED);
    problems.throwIfAny();
  }
  return target as UpstreamTarget;
}

/** A delivery endpoint URL for one region: same rules as upstreams, the path kept whole. */
function endpointUrl(template: string, region: Region): string | undefined {
  const target = upstreamTarget(template, region);
  return target ? `${target.origin}${target.basePath}` : undefined;
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

function list(value: string): string[] {
  return [
    ...new Set(
      value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ];
}

function regionConfig(s: RawSettings, region: Region, sinks: readonly SinkName[], problems: ConfigProblems): RegionConfig {
  const suffix = regionEnvSuffix(region);
  const api = upstreamTarget(s.CE_API_URL, region);
  if (!api) problems.add('CE_API_URL', s.CE_API_URL, URL_EXPECTED);
  const kube = upstreamTarget(s.CE_KUBE_API_URL, region);
  if (!kube) problems.add('CE_KUBE_API_URL', s.CE_KUBE_API_URL, URL_EXPECTED);

  let logdna: RegionConfig['logdna'];
  if (sinks.includes('logdna')) {
    const url = endpointUrl(s.AT_LOGDNA_URL, region);
    if (!url) problems.add('AT_LOGDNA_URL', s.AT_LOGDNA_URL, URL_EXPECTED);
    const key = (s[`AT_INGESTION_KEY_${suffix}`] as string | undefined) ?? s.AT_INGESTION_KEY;
    // Data residency: a region with no credentials is a start-up error, never a silent drop.
    if (!key)
      problems.add(
        `AT_INGESTION_KEY_${suffix}`,
        undefined,
        `the logdna sink needs an ingestion key for region ${region} (set AT_INGESTION_KEY_${suffix} or AT_INGESTION_KEY)`,
      );
    if (url && key) logdna = { url, ingestionKey: key };
  }

  let cloudLogsUrl: string | undefined;
  if (sinks.includes('cloud-logs')) {
    const template = (s[`AT_CLOUD_LOGS_URL_${suffix}`] as string | undefined) ?? s.AT_CLOUD_LOGS_URL;
    if (!template) {
      problems.add(
        `AT_CLOUD_LOGS_URL_${suffix}`,
        undefined,
        `the cloud-logs sink needs the ingress URL of region ${region} (set AT_CLOUD_LOGS_URL_${suffix} or AT_CLOUD_LOGS_URL)`,
      );
    } else {
      cloudLogsUrl = endpointUrl(template, region);
      if (!cloudLogsUrl) problems.add(`AT_CLOUD_LOGS_URL_${suffix}`, template, URL_EXPECTED);
    }
  }
  return { region, upstreams: { api: api as UpstreamTarget, kube: kube as UpstreamTarget }, logdna, cloudLogsUrl };
}

/** Validate the whole configuration once; throws GatewayError('ERR_CONFIG_INVALID') naming every bad setting. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const problems = new ConfigProblems();
  const s = readSettings(env, problems);
  const adminHost = s.ADMIN_HOST;
  if (s.PORT !== 0 && s.PORT === s.ADMIN_PORT && (adminHost === s.HOST || adminHost === '0.0.0.0' || s.HOST === '0.0.0.0')) {
    problems.add('ADMIN_PORT', String(s.ADMIN_PORT), `a port different from PORT (${s.PORT}): admin routes never share the proxy port`);
  }
  const sinks = list(s.AT_SINK) as SinkName[];
  const regionNames = (s.CE_REGIONS ? list(s.CE_REGIONS) : [s.CE_REGION]) as Region[];
  if (!regionNames.includes(s.CE_REGION))
    problems.add(
      'CE_REGIONS',
      s.CE_REGIONS,
      `a list that includes CE_REGION (${s.CE_REGION}), the region of calls without a /regions/<region>/ prefix`,
    );
  const ordered = [s.CE_REGION, ...regionNames.filter((r) => r !== s.CE_REGION)];
  const regions = new Map(ordered.map((r) => [r, regionConfig(s, r, sinks, problems)] as const));
  if (sinks.includes('cloud-logs') && !s.IBMCLOUD_API_KEY) {
    problems.add('IBMCLOUD_API_KEY', undefined, 'the cloud-logs sink needs an API key to obtain its IAM token');
  }
  if (s.RETRY_MAX_MS < s.RETRY_BASE_MS)
    problems.add('RETRY_MAX_MS', String(s.RETRY_MAX_MS), `a delay of at least RETRY_BASE_MS (${s.RETRY_BASE_MS})`);
  const trustedProxies = parseTrustedProxies(s.TRUSTED_PROXIES, problems);
  if (Boolean(s.TLS_CERT_FILE) !== Boolean(s.TLS_KEY_FILE)) {
    problems.add(s.TLS_CERT_FILE ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE', undefined, 'TLS needs both TLS_CERT_FILE and TLS_KEY_FILE');
  }
  const cert = readPem('TLS_CERT_FILE', s.TLS_CERT_FILE, problems, /-----BEGIN CERTIFICATE-----/);
  const key = readPem('TLS_KEY_FILE', s.TLS_KEY_FILE, problems, /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  const upstreamCa = readPem('UPSTREAM_CA_FILE', s.UPSTREAM_CA_FILE, problems, /-----BEGIN CERTIFICATE-----/);
  const signingKey = readSigningKey(s.AUDIT_SIGNING_KEY_FILE, problems);
  if (cert && key) {
    try {
      createSecureContext({ cert, key });
    } catch (err) {
      problems.add('TLS_KEY_FILE', s.TLS_KEY_FILE, `the private key of the certificate in TLS_CERT_FILE (${(err as Error).message})`);
    }
  }
  problems.throwIfAny();

  const secrets = [
    ...[...regions.values()].flatMap((r) => (r.logdna ? [r.logdna.ingestionKey] : [])),
    ...(s.IBMCLOUD_API_KEY ? [s.IBMCLOUD_API_KEY] : []),
    ...(s.ADMIN_TOKEN ? [s.ADMIN_TOKEN] : []),
  ];
  return {
    port: s.PORT,
    host: s.HOST,
    adminPort: s.ADMIN_PORT,
    adminHost,
    adminToken: s.ADMIN_TOKEN,
    tls: cert && key ? { cert, key } : undefined,
    limits: {
      maxBodyBytes: s.MAX_BODY_BYTES,
      maxHeaderBytes: s.MAX_HEADER_BYTES,
      maxHeaders: s.MAX_HEADERS,
      headersTimeoutMs: s.HEADERS_TIMEOUT_MS,
      requestTimeoutMs: s.REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: s.KEEPALIVE_TIMEOUT_MS,
      maxConnections: s.MAX_CONNECTIONS,
    },
    upstreamCa,
    jwks: s.IAM_JWKS_URL ? { url: s.IAM_JWKS_URL, issuer: s.IAM_ISSUER } : undefined,
    region: s.CE_REGION,
    regions,
    accountId: s.CE_ACCOUNT_ID,
    namespaceProjects: parseNamespaceMap(s.CE_NAMESPACE_MAP),
    actionEdition: s.ACTION_CATALOG,
    sinks,
    fileDir: s.AT_FILE_DIR,
    fileFsync: s.AT_FILE_FSYNC,
    logdnaHostname: s.AT_LOGDNA_HOSTNAME ?? hostname(),
    cloudLogs: {
      application: s.AT_CLOUD_LOGS_APPLICATION,
      subsystem: s.AT_CLOUD_LOGS_SUBSYSTEM,
      apiKey: s.IBMCLOUD_API_KEY,
      iamTokenUrl: s.IAM_TOKEN_URL,
    },
    spool: {
      dir: s.SPOOL_DIR,
      fsync: s.SPOOL_FSYNC,
      maxBytes: s.SPOOL_MAX_BYTES,
      segmentBytes: s.SPOOL_SEGMENT_BYTES,
      holdMs: s.SPOOL_HOLD_MS,
      fullPolicy: s.SPOOL_FULL_POLICY,
    },
    batch: { maxEvents: s.BATCH_MAX_EVENTS, maxBytes: s.BATCH_MAX_BYTES, maxWaitMs: s.BATCH_MAX_WAIT_MS },
    retry: { baseMs: s.RETRY_BASE_MS, maxMs: s.RETRY_MAX_MS },
    sinkTimeoutMs: s.SINK_TIMEOUT_MS,
    sinkUnhealthyAfterMs: s.SINK_UNHEALTHY_AFTER_MS,
    deliveryThread: s.DELIVERY_THREAD,
    deliveryPacing: s.DELIVERY_PACING,
    captureMaxBytes: s.CAPTURE_MAX_BYTES,
    responseData: s.AUDIT_RESPONSE_DATA,
    integrity: { checkpointIntervalMs: s.AUDIT_CHECKPOINT_INTERVAL_MS, signingKey },
    upstream: {
      connectTimeoutMs: s.UPSTREAM_CONNECT_TIMEOUT_MS,
      headersTimeoutMs: s.UPSTREAM_HEADERS_TIMEOUT_MS,
      bodyTimeoutMs: s.UPSTREAM_BODY_TIMEOUT_MS,
      connections: s.UPSTREAM_CONNECTIONS,
    },
    trustedProxies,
    drainTimeoutMs: s.DRAIN_TIMEOUT_MS,
    heapGrowingPercent: s.HEAP_GROWING_PERCENT,
    logLevel: s.LOG_LEVEL,
    secrets,
    sourceEnv: settingsEnv(env),
  };
}

/** The default region's configuration. */
export function defaultRegion(config: GatewayConfig): RegionConfig {
  return config.regions.get(config.region) as RegionConfig;
}
