/**
 * Canaries planted in every place a credential travels (tokens and refresh tokens in headers, secret data of
 * every format, sensitive env variables, Kubernetes Secrets, JSON patches, kubeconfig responses) must never
 * appear in any byte the gateway writes: its journal and its own logs (at trace level).
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { FAKE_KUBE_TOKEN } from '../support/fake-code-engine';
import { iamToken, readJournal, startHarness, USER_CLAIMS, type Harness } from '../support/harness';

const canaries: string[] = [];
function canary(label: string): string {
  const value = `CANARY${label}${randomBytes(6).toString('hex')}`;
  canaries.push(value);
  return value;
}

const TOKEN = iamToken(USER_CLAIMS);
// The signature part alone identifies the token: it must not be written anywhere.
const TOKEN_SIGNATURE = TOKEN.split('.')[2] as string;

let h: Harness;
let project: string;

beforeAll(async () => {
  // AUDIT_RESPONSE_DATA=all: the most exposed setting, where read responses (a secret's data) reach events too.
  h = await startHarness({ LOG_LEVEL: 'trace', ACTION_CATALOG: 'current', AUDIT_RESPONSE_DATA: 'all' });
  const res = await request(h.url).post('/v2/projects').set('authorization', `Bearer ${TOKEN}`).send({ name: 'canary-project' });
  project = res.body.id as string;
});
afterAll(() => h.close());

function api(method: 'get' | 'post' | 'put' | 'patch' | 'delete', path: string) {
  return request(h.url)
    [method](path)
    .set('authorization', `Bearer ${TOKEN}`)
    .set('x-delegated-refresh-token', canary('delegated'))
    .set('refresh-token', canary('refresh'))
    .set('cookie', `session=${canary('cookie')}`)
    .set('if-match', '*');
}

const SECRET_FORMATS: Array<[string, () => Record<string, string>]> = [
  ['generic', () => ({ password: canary('generic'), anything: canary('genericany') })],
  ['registry', () => ({ username: 'iamapikey', password: canary('registry'), server: 'us.icr.io', email: 'a@b.c' })],
  [
    'ssh_auth',
    () => ({
      ssh_key: `-----BEGIN OPENSSH PRIVATE KEY-----\n${canary('ssh')}\n-----END OPENSSH PRIVATE KEY-----`,
      known_hosts: 'github.com ssh-rsa AAAA',
    }),
  ],
  [
    'tls',
    () => ({ tls_cert: `-----BEGIN CERTIFICATE-----\n${canary('tlscert')}`, tls_key: `-----BEGIN PRIVATE KEY-----\n${canary('tlskey')}` }),
  ],
  ['basic_auth', () => ({ username: 'admin', password: canary('basic') })],
  ['hmac_auth', () => ({ access_key_id: canary('hmacid'), secret_access_key: canary('hmacsecret') })],
  ['service_access', () => ({ apikey: canary('svcaccess'), iam_apikey_description: 'x' })],
  ['operator', () => ({ apikey: canary('operator'), resource_group_id: 'rg' })],
];

test.each(SECRET_FORMATS)('secret format %s: create, read, replace, list', async (format, data) => {
  const name = `s-${format.replace('_', '-')}`;
  expect((await api('post', `/v2/projects/${project}/secrets`).send({ name, format, data: data() })).status).toBe(201);
  expect((await api('get', `/v2/projects/${project}/secrets/${name}`)).status).toBe(200);
  expect((await api('put', `/v2/projects/${project}/secrets/${name}`).send({ format, data: data() })).status).toBe(200);
  expect((await api('get', `/v2/projects/${project}/secrets`)).status).toBe(200);
});

test('apps, jobs and functions with sensitive literal env variables', async () => {
  const env = () => [
    { type: 'literal', name: 'DB_PASSWORD', value: canary('envpw') },
    { type: 'literal', name: 'API_KEY', value: canary('envkey') },
    { type: 'literal', name: 'DATABASE_URL', value: `postgres://u:${canary('envurl')}@db/x` },
    { type: 'literal', name: 'LOG_LEVEL', value: 'debug' },
    { type: 'secret_full_reference', reference: 'db-creds' },
  ];
  expect(
    (await api('post', `/v2/projects/${project}/apps`).send({ name: 'env-app', image_reference: 'icr.io/x', run_env_variables: env() }))
      .status,
  ).toBe(201);
  expect((await api('patch', `/v2/projects/${project}/apps/env-app`).send({ run_env_variables: env() })).status).toBe(200);
  expect(
    (await api('post', `/v2/projects/${project}/jobs`).send({ name: 'env-job', image_reference: 'icr.io/x', run_env_variables: env() }))
      .status,
  ).toBe(201);
  const events = await h.events();
  const patch = events.find((e) => e.action === 'codeengine.application.update');
  // The harmless variable is still recorded, so the event stays useful.
  expect(JSON.stringify(patch?.requestData)).toContain('LOG_LEVEL');
});

test('Kubernetes Secrets: data, stringData, JSON patch, merge patch, list', async () => {
  const base = '/api/v1/namespaces/ns-canary/secrets';
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'k-secret' },
    data: { token: Buffer.from(canary('k8sdata')).toString('base64') },
    stringData: { password: canary('k8sstring') },
  };
  expect((await api('post', base).send(secret)).status).toBe(201);
  expect(
    (
      await api('patch', `${base}/k-secret`)
        .set('content-type', 'application/json-patch+json')
        .send([{ op: 'replace', path: '/data/token', value: canary('jsonpatch') }])
    ).status,
  ).toBe(200);
  expect(
    (
      await api('patch', `${base}/k-secret`)
        .set('content-type', 'application/merge-patch+json')
        .send({ data: { extra: Buffer.from(canary('mergepatch')).toString('base64') } })
    ).status,
  ).toBe(200);
  expect((await api('get', `${base}/k-secret`)).status).toBe(200);
  expect((await api('get', base)).status).toBe(200);
});

test('kubeconfig responses (both v1 forms) are never copied into events', async () => {
  const a = await api('get', `/api/v1/project/${project}/config`);
  expect(a.status).toBe(200);
  expect(a.text).toContain(FAKE_KUBE_TOKEN);
  const b = await api('get', `/api/v1/namespaces/${project}/config`);
  expect(b.status).toBe(200);
  canaries.push(FAKE_KUBE_TOKEN);
});

test('a non-JSON body is described, never quoted', async () => {
  const res = await api('post', `/v2/projects/${project}/config_maps`)
    .set('content-type', 'text/plain')
    .send(`name=x password=${canary('plain')}`);
  expect(res.status).toBe(400);
  const events = await h.events();
  const e = events[events.length - 1];
  expect(e?.requestData.bodyOmitted).toMatch(/text\/plain body of \d+ bytes is not JSON/);
});

test('no canary, token or token signature in any byte written', async () => {
  const { raw, events } = await readJournal(h.journalDir);
  expect(events.length).toBeGreaterThan(30);
  const logs = h.logs();
  // At trace level every call's request headers are logged (redacted), so the logs had every chance to leak.
  expect(logs).toContain('"msg":"proxying"');
  expect(logs).toContain('[REDACTED]');
  for (const secret of [...canaries, TOKEN, TOKEN_SIGNATURE]) {
    expect({ secret, inJournal: raw.includes(secret) }).toEqual({ secret, inJournal: false });
    expect({ secret, inLogs: logs.includes(secret) }).toEqual({ secret, inLogs: false });
  }
  // And the base64 forms of the Kubernetes canaries.
  for (const secret of canaries) {
    const b64 = Buffer.from(secret).toString('base64');
    expect(raw.includes(b64)).toBe(false);
  }
  // Redaction keeps the structure an auditor needs.
  const created = events.find((e) => e.action === 'codeengine.secret.create');
  expect(created?.requestData.body).toMatchObject({ format: 'generic', data: { password: '[REDACTED]' } });
});
