/**
 * Property: whatever the call (any route of the catalog, any method it takes), a credential planted in any
 * sensitive place of the request or the response (headers, secret data of every shape, sensitive keys at any
 * depth, sensitive environment variables, JSON Patch values, Kubernetes Secrets in base64, token- and
 * key-looking strings, kubeconfig answers, bodies that are not JSON) never reaches a byte the gateway writes:
 * the journal, the spool, the dead-letter files, or its own logs at trace level.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import fc from 'fast-check';
import { startReceiver, type Receiver } from '../../src/receiver/receiver';
import { loadCatalog } from '../../src/routing/catalog';
import { FRONT_ENDS, startFrontEnd, type FrontEnd } from '../support/express-harness';
import type { AuditHarness } from '../support/harness';
import { encodeKubeProtobuf } from '../support/kube-protobuf';
import { until } from '../support/load';

const RUNS = Number(process.env.CANARY_RUNS ?? 3000);
/**
 * The audit middleware builds, redacts and records events with the gateway's own code (the gateway's run covers the
 * rules in depth); its runs check that nothing of its own (its capture of bodies written by another proxy, its
 * logs) lets a canary through.
 */
const RUNS_OF: Record<FrontEnd, number> = {
  gateway: RUNS,
  'express+hpm': Math.max(100, Math.round(RUNS / 10)),
  'express+ce-proxy': Math.max(100, Math.round(RUNS / 10)),
};
const PREFIX = `CNRY${randomBytes(3).toString('hex')}`;
const planted = new Set<string>();

function canary(): string {
  const value = `${PREFIX}${randomBytes(6).toString('hex')}`;
  planted.add(value);
  return value;
}

/** A token: its claims say who (recorded, by design); its signature is the secret part. */
function jwtLike(): string {
  const c = canary();
  return `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify({ iam_id: 'IBMid-canary', nonce: c })).toString('base64url')}.${Buffer.from(c).toString('base64url')}`;
}

/** Sensitive places in a body, each holding fresh canaries. */
const SENSITIVE_KEYS = [
  'password',
  'passwd',
  'token',
  'apikey',
  'api_key',
  'private_key',
  'ssh_key',
  'hmac',
  'secret_access_key',
  'access_key_id',
  'client_secret',
  'credentials',
  'authorization',
  'cookie',
  'kubeconfig',
  'refresh_token',
];
const ENV_NAMES = [
  'DB_PASSWORD',
  'API_KEY',
  'GITHUB_TOKEN',
  'AWS_SECRET_ACCESS_KEY',
  'DATABASE_URL',
  'SESSION_COOKIE',
  'MY_CREDENTIALS',
  'TLS_CERT',
];
const SECRET_FORMATS = ['generic', 'registry', 'ssh_auth', 'tls', 'basic_auth', 'hmac_auth', 'service_access', 'operator'];

type Body = { kind: 'json'; value: unknown; contentType: string } | { kind: 'text'; value: string } | { kind: 'protobuf'; value: Buffer };

/** What kubectl apply sends: the manifest, and the same manifest as its last-applied-configuration annotation. */
function kubectlApplied(kind: 'Secret' | 'ConfigMap'): Record<string, unknown> {
  const manifest =
    kind === 'Secret'
      ? {
          apiVersion: 'v1',
          kind,
          metadata: { name: 'applied', namespace: 'ns1' },
          stringData: { token: canary() },
          data: { password: Buffer.from(canary()).toString('base64') },
        }
      : {
          apiVersion: 'v1',
          kind,
          metadata: { name: 'applied', namespace: 'ns1' },
          data: { password: canary(), 'app.json': JSON.stringify({ apikey: canary() }) },
        };
  const annotation = `${JSON.stringify({ ...manifest, metadata: { ...manifest.metadata, annotations: {} } })}\n`;
  return {
    ...manifest,
    metadata: { ...manifest.metadata, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': annotation } },
  };
}

const nested = (depth: number): fc.Arbitrary<Record<string, unknown>> =>
  fc
    .tuple(fc.constantFrom(...SENSITIVE_KEYS), fc.constantFrom('spec', 'config', 'auth', 'x'), fc.boolean())
    .map(([key, wrap, asObject]) => {
      let value: unknown = asObject ? { inner: canary(), [key]: canary() } : canary();
      let node: Record<string, unknown> = { [key]: value, harmless: 'kept' };
      for (let d = 0; d < depth; d++) node = { [wrap]: node };
      value = node;
      return value as Record<string, unknown>;
    });

const bodies: fc.Arbitrary<Body> = fc.oneof(
  fc.constantFrom(...SECRET_FORMATS).map((format) => ({
    kind: 'json' as const,
    contentType: 'application/json',
    value: {
      name: 's',
      format,
      data: { password: canary(), [`k_${randomBytes(2).toString('hex')}`]: canary(), tls_key: `-----BEGIN PRIVATE KEY-----\n${canary()}` },
    },
  })),
  fc.constantFrom(...ENV_NAMES).map((name) => ({
    kind: 'json' as const,
    contentType: 'application/merge-patch+json',
    value: {
      run_env_variables: [
        { type: 'literal', name, value: canary() },
        { type: 'literal', name: 'LOG_LEVEL', value: 'info' },
      ],
    },
  })),
  fc.constant(null).map(() => ({
    kind: 'json' as const,
    contentType: 'application/json',
    value: {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'k' },
      data: { token: Buffer.from(canary()).toString('base64') },
      stringData: { password: canary() },
    },
  })),
  fc
    .constantFrom('/data/token', '/stringData/password', '/spec/credentials/db', '/spec/template/spec/containers/0/env/-', '/password')
    .map((p) => ({
      kind: 'json' as const,
      contentType: 'application/json-patch+json',
      value: [{ op: 'add', path: p, value: p.endsWith('/-') ? { name: 'X_TOKEN', value: canary() } : canary() }],
    })),
  fc
    .integer({ min: 0, max: 4 })
    .chain((depth) => nested(depth))
    .map((value) => ({ kind: 'json' as const, contentType: 'application/json', value })),
  fc.constant(null).map(() => ({
    kind: 'json' as const,
    contentType: 'application/json',
    value: { name: 'n', note: `token here: ${jwtLike()}`, list: [jwtLike()] },
  })),
  fc.constant(null).map(() => ({ kind: 'text' as const, value: `password=${canary()}&token=${canary()}` })),
  fc.constantFrom('Secret' as const, 'ConfigMap' as const).map((kind) => ({
    kind: 'json' as const,
    contentType: 'application/json',
    value: kubectlApplied(kind),
  })),
  // kubectl 1.32 creates config maps and secrets in Kubernetes protobuf: never quoted, whatever it holds.
  fc.constantFrom('Secret', 'ConfigMap').map((kind) => ({
    kind: 'protobuf' as const,
    value: encodeKubeProtobuf({
      apiVersion: 'v1',
      kind,
      metadata: { name: 'pb', annotations: { note: canary() } },
      data: kind === 'Secret' ? { token: Buffer.from(canary()).toString('base64') } : { password: canary(), plain: canary() },
    }),
  })),
);

interface Call {
  method: string;
  path: string;
  body: Body | undefined;
}

const catalog = loadCatalog('current');
const ROUTES = catalog
  .describe()
  .flatMap((r) => r.operations.map((op) => ({ method: op.method, pattern: r.path })))
  .filter((r) => !/\/(exec|attach|portforward)$/.test(r.pattern));

const calls: fc.Arbitrary<Call> = fc
  .tuple(fc.constantFrom(...ROUTES), bodies, fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/))
  .map(([route, body, name]) => ({
    method: route.method,
    path: route.pattern.replace(/\{[a-z_]+\}/g, (m) =>
      m === '{version}' ? 'v1' : m === '{group}' ? 'example.com' : m === '{resource}' ? 'widgets' : name,
    ),
    body: route.method === 'GET' || route.method === 'DELETE' ? undefined : body,
  }));

let upstream: Server;
let receiver: Receiver;
let upstreamUrl: string;

beforeAll(async () => {
  // Answers every call with canaries in sensitive places, and echoes JSON bodies (whose canaries are too).
  upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url?.endsWith('/config')) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`apiVersion: v1\nkind: Config\nusers:\n- user:\n    token: ${canary()}\n`);
        return;
      }
      const sent = Buffer.concat(chunks).toString('utf8');
      let echo: unknown = null;
      try {
        echo = sent ? JSON.parse(sent) : null;
      } catch {
        echo = null;
      }
      const status = req.headers['x-status'] ? Number(req.headers['x-status']) : 200;
      const body = JSON.stringify({
        echo,
        secrets: [{ name: 's', resource_type: 'secret_generic_v2', data: { anything: canary() } }],
        items: [{ kind: 'Secret', data: { k: Buffer.from(canary()).toString('base64') } }],
        errors: status >= 400 ? [{ code: 'x', message: `failed for ${jwtLike()}` }] : undefined,
        access_token: canary(),
      });
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  receiver = await startReceiver({ logdnaKeys: { 'us-south': 'the-right-ingestion-key-123' } });
});
afterAll(async () => {
  await receiver.close();
  await new Promise<void>((r) => upstream.close(() => r()));
});

const settings = (): Record<string, string> => ({
  CE_API_URL: upstreamUrl,
  CE_KUBE_API_URL: upstreamUrl,
  ACTION_CATALOG: 'current',
  LOG_LEVEL: 'trace',
  // The most exposed setting: every response body, reads included, is a candidate for its event.
  AUDIT_RESPONSE_DATA: 'all',
  // The wrong key: every event also goes to the dead-letter file, which must be as clean as the rest.
  AT_SINK: 'file,logdna',
  AT_LOGDNA_URL: receiver.logdnaUrlTemplate,
  AT_INGESTION_KEY: 'a-wrong-ingestion-key-456',
  BATCH_MAX_WAIT_MS: '50',
});

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

describe.each(FRONT_ENDS)('%s', (frontEnd) => {
  const RUNS = RUNS_OF[frontEnd];
  let h: AuditHarness;
  beforeAll(async () => {
    h = await startFrontEnd(frontEnd, settings());
  });
  afterAll(() => h.close());

  test(`${RUNS} calls across the catalog with canaries in every sensitive place leave no canary byte behind`, async () => {
    const plantedBefore = planted.size;
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(calls, fc.boolean(), async (call, failing) => {
        const headers: Record<string, string> = {
          authorization: `Bearer ${jwtLike()}`,
          'x-delegated-refresh-token': canary(),
          'refresh-token': canary(),
          cookie: `session=${canary()}`,
          'x-auth-token': canary(),
        };
        if (failing) headers['x-status'] = '500';
        let body: string | Buffer | undefined;
        if (call.body?.kind === 'json') {
          headers['content-type'] = call.body.contentType;
          body = JSON.stringify(call.body.value);
        } else if (call.body?.kind === 'text') {
          headers['content-type'] = 'application/x-www-form-urlencoded';
          body = call.body.value;
        } else if (call.body?.kind === 'protobuf') {
          headers['content-type'] = 'application/vnd.kubernetes.protobuf';
          body = call.body.value;
        }
        const res = await fetch(`${h.url}${call.path}?token=${canary()}`, { method: call.method, headers, body });
        await res.arrayBuffer();
        sent++;
        return res.status > 0;
      }),
      { numRuns: RUNS },
    );
    expect(sent).toBe(RUNS);
    expect(planted.size - plantedBefore).toBeGreaterThan(RUNS * 5);

    // Everything recorded, delivered to the journal, and refused by the receiver into the dead-letter file.
    const journal = await h.events();
    expect(journal.length).toBe(RUNS);
    const dlq = path.join(h.spoolDir, 'dead-letter');
    expect(
      await until(async () => {
        const text = (await Promise.all((await filesUnder(dlq)).map((f) => readFile(f, 'utf8')))).join('');
        return text.split('\n').filter(Boolean).length >= RUNS;
      }, 30_000),
    ).toBe(true);

    const files = [...(await filesUnder(h.journalDir)), ...(await filesUnder(h.spoolDir))];
    expect(files.some((f) => f.endsWith('.wal'))).toBe(true);
    const written = Buffer.concat([...(await Promise.all(files.map((f) => readFile(f)))), Buffer.from(h.logs())]).toString('latin1');
    expect(written.length).toBeGreaterThan(RUNS * 1000);
    // The prefix alone would do; each canary and its base64 form are checked to name the culprit if one leaks.
    const leaks = [...planted].filter((c) => written.includes(c) || written.includes(Buffer.from(c).toString('base64').slice(0, 16)));
    const context = (c: string): string => {
      const needle = written.includes(c) ? c : Buffer.from(c).toString('base64').slice(0, 16);
      const at = written.indexOf(needle);
      return `${c}: ...${written.slice(Math.max(0, at - 300), at + 80)}...`;
    };
    expect(leaks.slice(0, 3).map(context)).toEqual([]);
    expect(written.includes(PREFIX)).toBe(false);
  }, 300_000);
});
