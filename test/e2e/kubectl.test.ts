/**
 * The real kubectl through the gateway, over TLS, against the Kubernetes API stand-in: get, create, apply
 * (twice: a create, then a strategic merge patch), label, replace and delete of config maps and secrets.
 * Every call that reached the stand-in has exactly one event with the right action, target name and outcome,
 * and no secret value is anywhere the gateway writes (spool, journal, its logs).
 *
 * kubectl is the one on PATH (or $KUBECTL): on this project's machines the Google Cloud SDK's dispatcher, which
 * runs kubectl 1.32 against the stand-in's 1.32 (JSON and protobuf, OpenAPI v3), or Debian's kubernetes-client
 * 1.20 that .ci/run installs where none is found (JSON only, /swagger-2.0.0.pb-v1). kubectl sends its bearer
 * token only over TLS: the gateway serves a certificate from a throwaway CA named in the kubeconfig.
 *
 * apply and replace run with --validate=false: client-side schema validation downloads the server's whole
 * OpenAPI document, which the stand-in does not serve (it answers 404, as a server without it would). kubectl
 * still asks for it, and those calls are audited as API discovery like the rest.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AuditEvent } from '../../src/types';
import { createTestCerts, type TestCerts } from '../support/certs';
import type { RecordedRequest } from '../support/fake-code-engine';
import { iamToken, startHarness, USER_CLAIMS, type Harness } from '../support/harness';
import { decodeKubeProtobuf } from '../support/kube-protobuf';

jest.setTimeout(180_000);

const KUBECTL = process.env.KUBECTL ?? 'kubectl';
const NS = 'ns1';
const RUN = Date.now().toString(36);
/** Secret values, each planted once; none may be written by the gateway, as sent or base64-encoded. */
const SECRETS = {
  createdCm: `KUBECTLcm${RUN}a`,
  createdSecret: `KUBECTLsec${RUN}b`,
  appliedToken1: `KUBECTLtok${RUN}c`,
  appliedPassword: `KUBECTLpw${RUN}d`,
  appliedToken2: `KUBECTLtok${RUN}e`,
  appliedCmPassword: `KUBECTLcmpw${RUN}f`,
  appliedCmApiKey: `KUBECTLkey${RUN}g`,
  appliedCmPassword2: `KUBECTLcmpw${RUN}h`,
  replacedToken: `KUBECTLtok${RUN}i`,
};
const b64 = (v: string): string => Buffer.from(v).toString('base64');

function secretManifest(token: string): string {
  return [
    'apiVersion: v1',
    'kind: Secret',
    'metadata: {name: app-secret, annotations: {owner: team-a}}',
    'type: Opaque',
    `stringData: {token: ${token}}`,
    `data: {password: ${b64(SECRETS.appliedPassword)}}`,
    '',
  ].join('\n');
}

function configMapManifest(password: string, level: string): string {
  return [
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata: {name: app-config}',
    'data:',
    `  password: ${password}`,
    `  app.json: '{"apiKey": "${SECRETS.appliedCmApiKey}", "level": "${level}"}'`,
    '  plain: kept',
    '',
  ].join('\n');
}

let certs: TestCerts;
let h: Harness;
let home: string;
let kubectlVersion = '';
const transcript: string[] = [];

function kubectl(...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      KUBECTL,
      ['--request-timeout=20s', ...args],
      // Its own HOME and KUBECONFIG: nothing of the machine's kubectl set-up is read or written.
      { env: { PATH: process.env.PATH ?? '', HOME: home, KUBECONFIG: path.join(home, 'kubeconfig') }, timeout: 60_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        transcript.push(`$ kubectl ${args.join(' ')} -> ${code}\n${stdout}${stderr}`);
        resolve({ code, out: `${stdout}${stderr}` });
      },
    );
  });
}

async function ok(...args: string[]): Promise<string> {
  const { code, out } = await kubectl(...args);
  if (code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${code}):\n${out}\n--- transcript:\n${transcript.join('\n')}`);
  return out;
}

beforeAll(async () => {
  certs = createTestCerts();
  h = await startHarness({
    TLS_CERT_FILE: certs.server.certFile,
    TLS_KEY_FILE: certs.server.keyFile,
    ACTION_CATALOG: 'current',
    // The most exposed setting: successful reads record their (redacted) response too.
    AUDIT_RESPONSE_DATA: 'all',
    LOG_LEVEL: 'trace',
  });
  home = await mkdtemp(path.join(tmpdir(), 'ce-audit-kubectl-'));
  await writeFile(
    path.join(home, 'kubeconfig'),
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{name: code-engine, cluster: {server: "${h.url}", certificate-authority: "${certs.ca.certFile}"}}]`,
      `users: [{name: auditor, user: {token: "${iamToken(USER_CLAIMS)}"}}]`,
      `contexts: [{name: project, context: {cluster: code-engine, user: auditor, namespace: ${NS}}}]`,
      'current-context: project',
      '',
    ].join('\n'),
  );
  await writeFile(path.join(home, 'secret-v1.yaml'), secretManifest(SECRETS.appliedToken1));
  await writeFile(path.join(home, 'secret-v2.yaml'), secretManifest(SECRETS.appliedToken2));
  await writeFile(path.join(home, 'secret-v3.yaml'), secretManifest(SECRETS.replacedToken));
  await writeFile(path.join(home, 'cm-v1.yaml'), configMapManifest(SECRETS.appliedCmPassword, 'debug'));
  await writeFile(path.join(home, 'cm-v2.yaml'), configMapManifest(SECRETS.appliedCmPassword2, 'info'));
  await writeFile(path.join(home, 'cm-v3.yaml'), configMapManifest(SECRETS.appliedCmPassword2, 'warn'));
  kubectlVersion = (await ok('version', '--client')).split('\n')[0] ?? '';
});

afterAll(async () => {
  await h?.close();
  certs?.cleanup();
  if (home) await rm(home, { recursive: true, force: true });
});

const file = (name: string): string => path.join(home, name);

test('kubectl manages config maps and secrets through the gateway over TLS', async () => {
  expect(await ok('get', 'configmaps')).toMatch(/No resources found/);
  await ok('create', 'configmap', 'app-settings', '--from-literal=mode=fast', `--from-literal=password=${SECRETS.createdCm}`);
  await ok('create', 'secret', 'generic', 'db-creds', `--from-literal=password=${SECRETS.createdSecret}`);
  expect(await ok('apply', '--validate=false', '-f', file('secret-v1.yaml'))).toMatch(/secret\/app-secret created/);
  expect(await ok('apply', '--validate=false', '-f', file('secret-v2.yaml'))).toMatch(/secret\/app-secret configured/);
  expect(await ok('apply', '--validate=false', '-f', file('cm-v1.yaml'))).toMatch(/configmap\/app-config created/);
  expect(await ok('apply', '--validate=false', '-f', file('cm-v2.yaml'))).toMatch(/configmap\/app-config configured/);
  await ok('label', 'configmap', 'app-settings', 'team=audit');
  await ok('label', 'secret', 'db-creds', 'team=audit');
  await ok('replace', '--validate=false', '-f', file('secret-v3.yaml'));
  await ok('replace', '--validate=false', '-f', file('cm-v3.yaml'));
  expect(await ok('get', 'configmap', 'app-config', '-o', 'jsonpath={.data.plain}')).toBe('kept');
  expect(await ok('get', 'secret', 'app-secret', '-o', 'jsonpath={.data.token}')).toBe(b64(SECRETS.replacedToken));
  const listed = await ok('get', 'configmaps,secrets');
  for (const name of ['app-settings', 'app-config', 'db-creds', 'app-secret']) expect(listed).toContain(name);
  await ok('delete', 'configmap', 'app-settings', 'app-config');
  await ok('delete', 'secret', 'db-creds', 'app-secret');
  expect((await kubectl('get', 'secret', 'app-secret')).code).not.toBe(0);
});

/** What an auditor must see for one call the stand-in received, worked out from the call alone. */
function expectedFor(r: RecordedRequest): { action: string; name: string; outcome: string } | undefined {
  const outcome = (r.status ?? 499) < 400 ? 'success' : 'failure';
  const seg = r.path.split('/').filter(Boolean);
  const isDiscovery =
    ['api', 'apis', 'version', 'openapi'].includes(seg[0] ?? '') &&
    !(seg[0] === 'api' && seg[2] === 'namespaces') &&
    !seg.includes('namespaces');
  if (isDiscovery || /^\/(swagger|openapi)/.test(r.path)) return { action: 'codeengine.apidiscovery.read', name: '', outcome };
  if (r.path === `/api/v1/namespaces/${NS}` && r.method === 'GET') return { action: 'codeengine.namespaces.read', name: NS, outcome };
  const m = /^\/api\/v1\/namespaces\/ns1\/(configmaps|secrets)(?:\/([^/]+))?$/.exec(r.path);
  if (!m) return undefined;
  const object = m[1] === 'configmaps' ? 'configmap' : 'secret';
  const item = m[2];
  if (item === undefined) {
    if (r.method === 'GET') return { action: `codeengine.${object}.list`, name: NS, outcome };
    if (r.method !== 'POST') return undefined;
    const created = r.headers['content-type']?.startsWith('application/vnd.kubernetes.protobuf')
      ? decodeKubeProtobuf(r.body)
      : (JSON.parse(r.body.toString('utf8')) as { metadata: { name: string } });
    return { action: `codeengine.${object}.create`, name: String((created.metadata as { name: string }).name), outcome };
  }
  const verb = { GET: 'read', PUT: 'update', PATCH: 'update', DELETE: 'delete' }[r.method];
  return verb ? { action: `codeengine.${object}.${verb}`, name: item, outcome } : undefined;
}

test('every call that reached Code Engine has exactly one event, with the right action, target and outcome', async () => {
  const events = await h.events();
  const byTx = new Map<string, AuditEvent[]>();
  for (const e of events) byTx.set(e.transactionID, [...(byTx.get(e.transactionID) ?? []), e]);
  const problems: string[] = [];
  for (const r of h.upstream.requests) {
    const tx = String(r.headers['x-correlation-id']);
    const found = byTx.get(tx) ?? [];
    const expected = expectedFor(r);
    const actual = found[0];
    const seen = actual && { action: actual.action, name: actual.target.name, outcome: actual.outcome };
    if (!expected) problems.push(`unexpected call ${r.method} ${r.url}`);
    else if (found.length !== 1) problems.push(`${r.method} ${r.path}: ${found.length} events`);
    else if (JSON.stringify(seen) !== JSON.stringify(expected))
      problems.push(`${r.method} ${r.path} (${r.status}): event ${JSON.stringify(seen)}, expected ${JSON.stringify(expected)}`);
    else if (actual?.initiator.id !== USER_CLAIMS.iam_id) problems.push(`${r.method} ${r.path}: initiator ${actual?.initiator.id}`);
  }
  expect({ kubectl: kubectlVersion, problems }).toEqual({ kubectl: kubectlVersion, problems: [] });
  // Nothing audited that did not happen: one event per call, and the calls the commands must have made.
  expect(events).toHaveLength(h.upstream.requests.length);
  const calls = new Set(h.upstream.requests.map((r) => `${r.method} ${r.path}`));
  for (const call of [
    'POST /api/v1/namespaces/ns1/configmaps',
    'POST /api/v1/namespaces/ns1/secrets',
    'PATCH /api/v1/namespaces/ns1/secrets/app-secret',
    'PATCH /api/v1/namespaces/ns1/configmaps/app-config',
    'PATCH /api/v1/namespaces/ns1/configmaps/app-settings',
    'PUT /api/v1/namespaces/ns1/secrets/app-secret',
    'PUT /api/v1/namespaces/ns1/configmaps/app-config',
    'DELETE /api/v1/namespaces/ns1/secrets/db-creds',
    'DELETE /api/v1/namespaces/ns1/configmaps/app-settings',
  ])
    expect(calls).toContain(call);
  // kubectl 1.20 falls back to /swagger-2.0.0.pb-v1, kubectl 1.32 reads /openapi/v3: both are API discovery.
  const openapi = events.filter((e) => /^\/(openapi|swagger)/.test(String(e.requestData.path)));
  expect(openapi.length).toBeGreaterThan(0);
  expect(new Set(openapi.map((e) => e.action))).toEqual(new Set(['codeengine.apidiscovery.read']));
  // The creates are named whatever their encoding (kubectl 1.32 sends them in protobuf).
  const creates = events.filter((e) => e.action.endsWith('.create')).map((e) => e.target.name);
  expect(creates.sort()).toEqual(['app-config', 'app-secret', 'app-settings', 'db-creds']);
});

test('the applied manifest stays readable in the events, without its values', async () => {
  const events = await h.events();
  const patch = events.find(
    (e) => e.action === 'codeengine.secret.update' && e.requestData.method === 'PATCH' && e.target.name === 'app-secret',
  );
  const annotation = (patch?.requestData.body as { metadata?: { annotations?: Record<string, string> } } | undefined)?.metadata
    ?.annotations?.['kubectl.kubernetes.io/last-applied-configuration'];
  expect(typeof annotation).toBe('string');
  expect(JSON.parse(annotation as string)).toMatchObject({
    kind: 'Secret',
    metadata: { name: 'app-secret', annotations: { owner: 'team-a' } },
    stringData: { token: '[REDACTED]' },
    data: { password: '[REDACTED]' },
  });
});

test('no secret value is anywhere the gateway wrote: spool, journal, logs', async () => {
  await h.events();
  let written = h.logs();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(p);
      else written += (await readFile(p)).toString('latin1');
    }
  };
  await walk(path.dirname(h.journalDir));
  expect(written.length).toBeGreaterThan(0);
  const forms = Object.values(SECRETS).flatMap((s) => [s, b64(s), b64(s).replace(/=+$/, '')]);
  expect(forms.filter((f) => written.includes(f))).toEqual([]);
  // Nor the bearer token kubectl sent (its signature is the secret part).
  expect(written).not.toContain(iamToken(USER_CLAIMS).split('.')[2]);
});
