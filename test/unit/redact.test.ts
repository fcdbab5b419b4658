import fc from 'fast-check';
import { loadRedactor, type Json, type JsonObject, type Redactor } from '../../src/audit/redact';

const R = '[REDACTED]';
const JWT = 'eyJhbGciOiJSUzI1NiIsImtpZCI6IjIwMjQifQ.eyJpYW1faWQiOiJJQk1pZC0xMjM0NSIsInN1YiI6ImFAYi5jIn0.c2lnbmF0dXJlLXBhcnQ';
const PEM_RSA = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAvXlJ0\n-----END RSA PRIVATE KEY-----\n';
const PEM_OPENSSH = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----';
const PEM_PKCS8 = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEG\n-----END PRIVATE KEY-----';
const PEM_EC = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----';

let redactor: Redactor;

beforeAll(() => {
  redactor = loadRedactor();
});

/** Redact a deep copy, so each test keeps its input for comparison. */
function redact(body: Json, secretBearing = false): Json {
  return redactor.redactBody(structuredClone(body), secretBearing);
}

function obj(value: Json): JsonObject {
  expect(value).not.toBeNull();
  expect(typeof value).toBe('object');
  expect(Array.isArray(value)).toBe(false);
  return value as JsonObject;
}

function allRedacted(map: Json, keys: readonly string[]): void {
  const o = obj(map);
  expect(Object.keys(o).sort()).toEqual([...keys].sort());
  for (const key of keys) expect(o[key]).toBe(R);
}

describe('rules', () => {
  test('the replacement text is the documented one', () => {
    expect(redactor.replacement).toBe(R);
  });

  test.each([
    'password',
    'PASSWORD',
    'db_pass',
    'passwd',
    'pwd',
    'apikey',
    'api_key',
    'ApiKey',
    'token',
    'access_token',
    'private_key',
    'privateKey',
    'secret_access_key',
    'access_key_id',
    'client_secret',
    'ssh_key',
    'tls_key',
    'hmac',
    'credentials',
    'Authorization',
    'cookie',
    'session_id',
    'kubeconfig',
    'refresh_token',
    'dsn',
    'connection_string',
  ])('sensitive key: %s', (key) => {
    expect(redactor.isSensitiveKey(key)).toBe(true);
  });

  test.each([
    'name',
    'format',
    'resource_type',
    'secret_name',
    'secretName',
    'image_secret',
    'secrets',
    'secretKeyRef',
    'token_type',
    'expires_in',
    'entity_tag',
    'href',
    'id',
    'region',
    'data',
    'value',
  ])('harmless key: %s', (key) => {
    expect(redactor.isSensitiveKey(key)).toBe(false);
  });
});

describe('Code Engine v2 secrets: every format keeps its sensitive values in data', () => {
  const formats: Array<{ format: string; resourceType: string; data: Record<string, string>; extra?: JsonObject }> = [
    { format: 'generic', resourceType: 'secret_generic_v2', data: { foo: 'bar', DB_HOST: 'db.example.com', anything: 'plain text' } },
    {
      format: 'registry',
      resourceType: 'secret_registry_v2',
      data: { username: 'iamapikey', password: 'registry-pass', server: 'us.icr.io', email: 'a@b.c' },
    },
    {
      format: 'ssh_auth',
      resourceType: 'secret_auth_ssh_v2',
      data: { ssh_key: 'ssh-key-material', known_hosts: 'github.com ssh-ed25519 AAAA' },
    },
    { format: 'tls', resourceType: 'secret_tls_v2', data: { tls_cert: 'cert-body', tls_key: 'key-body' } },
    { format: 'basic_auth', resourceType: 'secret_basic_auth_v2', data: { username: 'admin', password: 's3cr3t' } },
    { format: 'hmac_auth', resourceType: 'secret_hmac_auth_v2', data: { access_key_id: 'AKIAXXXX', secret_access_key: 'wJalrXUtnFEMI' } },
    {
      format: 'service_access',
      resourceType: 'secret_service_access_v2',
      data: { apikey: 'svc-apikey', iam_apikey_description: 'auto-generated key description', url: 'https://db.example.com' },
      extra: {
        service_access: {
          resource_key: { id: '4e49b3d0-27a8-48d2-a784-c7ee48bb863b', name: 'key-1' },
          role: { crn: 'crn:v1:bluemix:public:iam::::serviceRole:Writer', name: 'Writer' },
          service_instance: { id: 'inst-1', type: 'databases-for-postgresql' },
        },
      },
    },
    {
      format: 'operator',
      resourceType: 'secret_operator_v2',
      data: { apikey: 'operator-apikey' },
      extra: { service_id: { id: 'ServiceId-1234' } },
    },
  ];

  test.each(formats)('$format: data values replaced, keys and metadata kept', ({ format, resourceType, data, extra }) => {
    const body: JsonObject = {
      name: `my-${format}`,
      format,
      resource_type: resourceType,
      entity_tag: '2',
      href: `https://api.us-south.codeengine.cloud.ibm.com/v2/projects/p/secrets/my-${format}`,
      created_at: '2026-01-01T00:00:00Z',
      region: 'us-south',
      data,
      ...(extra ?? {}),
    };
    // The resource_type marker alone is enough, even on a route that is not marked secret-bearing.
    for (const secretBearing of [false, true]) {
      const out = obj(redact(body, secretBearing));
      allRedacted(out.data as Json, Object.keys(data));
      expect({ ...out, data: undefined }).toEqual({ ...body, data: undefined });
      for (const value of Object.values(data)) expect(JSON.stringify(out)).not.toContain(value);
    }
  });

  test('a create request (no resource_type yet) is redacted on a secret-bearing route', () => {
    const body: JsonObject = { name: 'db-creds', format: 'generic', data: { user: 'admin', host: 'db.internal' } };
    const out = obj(redact(body, true));
    expect(out.name).toBe('db-creds');
    expect(out.format).toBe('generic');
    allRedacted(out.data as Json, ['user', 'host']);
  });

  test('a v2 secret list: every item redacted, paging kept', () => {
    const body: JsonObject = {
      limit: 100,
      first: { href: 'https://api.us-south.codeengine.cloud.ibm.com/v2/projects/p/secrets?limit=100' },
      secrets: [
        { name: 'a', format: 'generic', resource_type: 'secret_generic_v2', data: { k: 'v1' } },
        { name: 'b', format: 'registry', resource_type: 'secret_registry_v2', data: { password: 'v2', server: 'icr.io' } },
      ],
    };
    const out = obj(redact(body, true));
    expect(out.limit).toBe(100);
    expect(out.first).toEqual(body.first);
    const items = out.secrets as JsonObject[];
    expect(items.map((i) => i.name)).toEqual(['a', 'b']);
    allRedacted(items[0]?.data as Json, ['k']);
    allRedacted(items[1]?.data as Json, ['password', 'server']);
  });

  test('null values in secret data (merge-patch deletions) stay null', () => {
    const out = obj(redact({ data: { removed: null, changed: 'x' } }, true));
    expect(out.data).toEqual({ removed: null, changed: R });
  });

  test('non-string values in secret data are replaced too, nested structure kept', () => {
    const out = obj(redact({ resource_type: 'secret_generic_v2', data: { n: 42, b: true, nested: { deep: ['x', 7] } } }));
    expect(out.data).toEqual({ n: R, b: R, nested: { deep: [R, R] } });
  });
});

describe('environment variables', () => {
  test('run_env_variables: literal values with sensitive names replaced, harmless ones and references kept', () => {
    const body: JsonObject = {
      name: 'web',
      image_reference: 'icr.io/codeengine/helloworld',
      run_env_variables: [
        { type: 'literal', name: 'DB_PASSWORD', value: 'hunter2' },
        { type: 'literal', name: 'API_KEY', value: 'k-123' },
        { type: 'literal', name: 'DATABASE_URL', value: 'postgres://u:p@db:5432/app' },
        { type: 'literal', name: 'X_TOKEN', value: 'tok' },
        { type: 'literal', name: 'LOG_LEVEL', value: 'debug' },
        { type: 'literal', name: 'PORT', value: '8080' },
        { type: 'secret_full_reference', reference: 'db-creds', prefix: 'DB_' },
        { type: 'secret_key_reference', name: 'PGUSER', reference: 'db-creds', key: 'username' },
        { type: 'config_map_full_reference', reference: 'app-config' },
      ],
    };
    const out = obj(redact(body));
    expect(out.run_env_variables).toEqual([
      { type: 'literal', name: 'DB_PASSWORD', value: R },
      { type: 'literal', name: 'API_KEY', value: R },
      { type: 'literal', name: 'DATABASE_URL', value: R },
      { type: 'literal', name: 'X_TOKEN', value: R },
      { type: 'literal', name: 'LOG_LEVEL', value: 'debug' },
      { type: 'literal', name: 'PORT', value: '8080' },
      { type: 'secret_full_reference', reference: 'db-creds', prefix: 'DB_' },
      { type: 'secret_key_reference', name: 'PGUSER', reference: 'db-creds', key: 'username' },
      { type: 'config_map_full_reference', reference: 'app-config' },
    ]);
    expect(out.name).toBe('web');
    expect(out.image_reference).toBe('icr.io/codeengine/helloworld');
  });

  test('Kubernetes container env: value replaced for sensitive names, valueFrom references kept', () => {
    const body: JsonObject = {
      spec: {
        template: {
          spec: {
            containers: [
              {
                name: 'user-container',
                env: [
                  { name: 'AUTH_SECRET', value: 'abc' },
                  { name: 'MODE', value: 'prod' },
                  { name: 'DB_PASS', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
                ],
              },
            ],
          },
        },
      },
    };
    const out = redact(body);
    expect(out).toEqual({
      spec: {
        template: {
          spec: {
            containers: [
              {
                name: 'user-container',
                env: [
                  { name: 'AUTH_SECRET', value: R },
                  { name: 'MODE', value: 'prod' },
                  { name: 'DB_PASS', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
                ],
              },
            ],
          },
        },
      },
    });
  });

  test('a harmless env var whose value is a token is still redacted by value', () => {
    const out = obj(redact({ run_env_variables: [{ type: 'literal', name: 'GREETING', value: JWT }] }));
    expect(out.run_env_variables).toEqual([{ type: 'literal', name: 'GREETING', value: R }]);
  });

  // Regression: members of an env entry other than its value skipped the key-name and secret-object checks.
  test('a credential-named member of an env entry is redacted like anywhere else', () => {
    const out = redact({
      run_env_variables: [{ type: 'literal', name: 'LOG_LEVEL', value: 'debug', password: 'CANARY-env-member' }],
      env: [{ resource_type: 'secret_generic_v2', data: { k: 'CANARY-env-secret' } }],
    });
    expect(JSON.stringify(out)).not.toContain('CANARY');
  });
});

describe('Kubernetes secrets', () => {
  test('kind Secret: data (base64) and stringData values replaced, metadata and type kept', () => {
    const body: JsonObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'db-creds', namespace: '4svg40kna19', labels: { app: 'web' } },
      type: 'Opaque',
      data: { username: 'YWRtaW4=', 'tls.key': 'LS0tLS1CRUdJTg==' },
      stringData: { 'config.yaml': 'host: db' },
    };
    const out = obj(redact(body));
    expect(out.metadata).toEqual(body.metadata);
    expect(out.type).toBe('Opaque');
    expect(out.kind).toBe('Secret');
    allRedacted(out.data as Json, ['username', 'tls.key']);
    allRedacted(out.stringData as Json, ['config.yaml']);
  });

  test('a SecretList whose items carry no kind, on a secret-bearing route', () => {
    const body: JsonObject = {
      apiVersion: 'v1',
      kind: 'List',
      metadata: { resourceVersion: '123' },
      items: [
        { metadata: { name: 'a' }, type: 'Opaque', data: { k: 'dmFsdWU=' } },
        { metadata: { name: 'b' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': 'eyJhdXRocyI6e319' } },
      ],
    };
    const out = obj(redact(body, true));
    const items = out.items as JsonObject[];
    expect(items.map((i) => i.metadata)).toEqual([{ name: 'a' }, { name: 'b' }]);
    allRedacted(items[0]?.data as Json, ['k']);
    allRedacted(items[1]?.data as Json, ['.dockerconfigjson']);
  });

  test('kind SecretList marks its items as secrets even on a route that is not secret-bearing', () => {
    const out = obj(redact({ kind: 'SecretList', items: [{ metadata: { name: 'a' }, data: { k: 'dmFsdWU=' } }] }, false));
    allRedacted((out.items as JsonObject[])[0]?.data as Json, ['k']);
  });
});

describe('JSON Patch', () => {
  test('ops touching /data on a secret-bearing body are redacted; other ops and op metadata kept', () => {
    const body: Json = [
      { op: 'add', path: '/data/x', value: 'c2VjcmV0' },
      { op: 'replace', path: '/data', value: { a: 'YQ==', b: 'Yg==' } },
      { op: 'add', path: '/stringData/plain', value: 'text' },
      { op: 'replace', path: '/metadata/labels/app', value: 'web' },
      { op: 'remove', path: '/data/y' },
      { op: 'move', from: '/data/a', path: '/data/b' },
      { op: 'test', path: '/metadata/name', value: 'db-creds' },
    ];
    expect(redact(body, true)).toEqual([
      { op: 'add', path: '/data/x', value: R },
      { op: 'replace', path: '/data', value: { a: R, b: R } },
      { op: 'add', path: '/stringData/plain', value: R },
      { op: 'replace', path: '/metadata/labels/app', value: 'web' },
      { op: 'remove', path: '/data/y' },
      { op: 'move', from: '/data/a', path: '/data/b' },
      { op: 'test', path: '/metadata/name', value: 'db-creds' },
    ]);
  });

  test('a sensitive last path segment is redacted on any body; /data on a non-secret body is kept', () => {
    const body: Json = [
      { op: 'replace', path: '/spec/password', value: 'p4ss' },
      { op: 'add', path: '/metadata/annotations/api_token', value: { nested: 'x' } },
      { op: 'replace', path: '/data/LOG_LEVEL', value: 'debug' },
      { op: 'add', path: '/spec/replicas', value: 3 },
    ];
    expect(redact(body, false)).toEqual([
      { op: 'replace', path: '/spec/password', value: R },
      { op: 'add', path: '/metadata/annotations/api_token', value: { nested: R } },
      { op: 'replace', path: '/data/LOG_LEVEL', value: 'debug' },
      { op: 'add', path: '/spec/replicas', value: 3 },
    ]);
  });

  test('op values are redacted like any body (sensitive keys, secret objects, tokens)', () => {
    const body: Json = [
      { op: 'add', path: '/spec/x', value: { password: 'p', keep: 'k' } },
      { op: 'add', path: '/items/0', value: { kind: 'Secret', data: { a: 'YQ==' } } },
      { op: 'add', path: '/metadata/annotations/note', value: JWT },
    ];
    expect(redact(body, false)).toEqual([
      { op: 'add', path: '/spec/x', value: { password: R, keep: 'k' } },
      { op: 'add', path: '/items/0', value: { kind: 'Secret', data: { a: R } } },
      { op: 'add', path: '/metadata/annotations/note', value: R },
    ]);
  });

  test('merge-patch of secret data on a secret-bearing route', () => {
    const out = obj(redact({ data: { password: 'new', other: 'x' }, metadata: { labels: { a: 'b' } } }, true));
    expect(out).toEqual({ data: { password: R, other: R }, metadata: { labels: { a: 'b' } } });
  });

  // Regression: an env entry added by JSON Patch (kubectl patch --type json ... env/-) kept its value.
  test('a JSON Patch op adding an env entry with a sensitive name is redacted', () => {
    const body: Json = [
      { op: 'add', path: '/spec/template/spec/containers/0/env/-', value: { name: 'X_TOKEN', value: 'CANARY-patch-env' } },
    ];
    expect(JSON.stringify(redact(body, false))).not.toContain('CANARY');
  });

  // Regression: only the last segment of a JSON Patch path was checked, so /spec/credentials/db was kept.
  test('a JSON Patch op writing below a credential-named key is redacted', () => {
    const body: Json = [{ op: 'replace', path: '/spec/credentials/db', value: 'CANARY-under-credentials' }];
    expect(JSON.stringify(redact(body, false))).not.toContain('CANARY');
  });
});

describe('token-looking values anywhere', () => {
  test.each([
    ['a JWT', JWT],
    ['a JWT inside a sentence', `header was Bearer-less ${JWT} here`],
    ['a bearer header value', 'Bearer abcdefghijklmnop'],
    ['a basic header value', 'Basic dXNlcjpwYXNzd29yZA=='],
    ['an RSA private key', PEM_RSA],
    ['an OpenSSH private key', PEM_OPENSSH],
    ['a PKCS#8 private key', PEM_PKCS8],
    ['an EC private key', PEM_EC],
    ['kubeconfig client key data', 'users:\n- user:\n    client-key-data: LS0tLS1CRUdJTi'],
  ])('%s is replaced wherever it is', (_label, value) => {
    const body: JsonObject = {
      name: 'cm',
      resource_type: 'config_map_v2',
      data: { 'note.txt': value },
      spec: { list: ['ok', value, { deep: { deeper: value } }] },
    };
    const out = obj(redact(body));
    expect(out).toEqual({
      name: 'cm',
      resource_type: 'config_map_v2',
      data: { 'note.txt': R },
      spec: { list: ['ok', R, { deep: { deeper: R } }] },
    });
    expect(redact(value)).toBe(R);
    expect(redact([value, 'fine'])).toEqual([R, 'fine']);
  });

  test('short or partial look-alikes are kept', () => {
    const body: JsonObject = { a: 'eyJ', b: 'Bearer', c: 'token_type Bearer x', d: 'BEGIN PRIVATE KEY', e: 'eyJabc.def.ghi' };
    expect(redact(body)).toEqual(body);
  });

  test('scalars and empty bodies pass through', () => {
    expect(redact(null)).toBeNull();
    expect(redact(42)).toBe(42);
    expect(redact(true)).toBe(true);
    expect(redact('plain')).toBe('plain');
    expect(redact([])).toEqual([]);
    expect(redact({})).toEqual({});
  });
});

describe('redactText', () => {
  test('replaces each token-looking substring and keeps the rest', () => {
    expect(redactor.redactText(`token ${JWT} is expired`)).toBe(`token ${R} is expired`);
    expect(redactor.redactText(`a ${JWT} b ${JWT}`)).toBe(`a ${R} b ${R}`);
    expect(redactor.redactText('Authorization: Bearer abcdefghijklmnopqrstuvwxyz rejected')).toBe(`Authorization: ${R} rejected`);
    expect(redactor.redactText(`key: ${PEM_RSA}`)).not.toContain('BEGIN RSA PRIVATE KEY');
  });

  test('text without tokens is returned unchanged', () => {
    const message = 'Resource not found. (project 0b4d2c1e, secret db-creds)';
    expect(redactor.redactText(message)).toBe(message);
    expect(redactor.redactText('')).toBe('');
  });

  test('is stable across calls (no global-regex lastIndex state)', () => {
    for (let i = 0; i < 3; i++) expect(redactor.redactText(`x ${JWT}`)).toBe(`x ${R}`);
    for (let i = 0; i < 3; i++) expect(redact({ a: JWT })).toEqual({ a: R });
  });
});

describe('harmless structure is kept', () => {
  test('an app with a binding and references', () => {
    const body: JsonObject = {
      name: 'web',
      resource_type: 'app_v2',
      image_reference: 'icr.io/ns/web:1',
      image_secret: 'registry-secret',
      run_volume_mounts: [{ type: 'secret', reference: 'tls-secret', mount_path: '/etc/tls' }],
      scale_min_instances: 0,
      probe: { readiness: { type: 'tcp', port: 8080 } },
    };
    expect(redact(body, false)).toEqual(body);
  });

  test('a binding names its secret and keeps it', () => {
    const body: JsonObject = {
      component: { name: 'web', resource_type: 'app_v2' },
      prefix: 'DB',
      secret_name: 'db-binding',
      resource_type: 'binding_v2',
    };
    expect(redact(body, false)).toEqual(body);
  });

  test('config map data on a non-secret body is kept', () => {
    const body: JsonObject = {
      name: 'app-config',
      resource_type: 'config_map_v2',
      format: 'generic',
      data: { LOG_LEVEL: 'debug', greeting: 'hello', 'app.yaml': 'a: 1' },
    };
    expect(redact(body, false)).toEqual(body);
  });

  test('config map data with a credential-named key is still redacted by key', () => {
    const out = obj(redact({ resource_type: 'config_map_v2', data: { db_password: 'x', LOG_LEVEL: 'debug' } }, false));
    expect(out.data).toEqual({ db_password: R, LOG_LEVEL: 'debug' });
  });

  test('an IAM token response keeps token_type and expires_in', () => {
    const out = redact({
      access_token: JWT,
      refresh_token: 'opaque-refresh',
      token_type: 'Bearer',
      expires_in: 3600,
      expiration: 1700000000,
    });
    expect(out).toEqual({ access_token: R, refresh_token: R, token_type: 'Bearer', expires_in: 3600, expiration: 1700000000 });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Property: a canary planted anywhere a credential can sit never survives redaction.

const SENSITIVE_KEYS = [
  'password',
  'Password',
  'db_password',
  'passphrase',
  'apikey',
  'api_key',
  'apiKey',
  'token',
  'access_token',
  'refresh_token',
  'private_key',
  'privateKey',
  'secret_access_key',
  'access_key_id',
  'client_secret',
  'ssh_key',
  'tls_key',
  'credentials',
  'authorization',
  'Cookie',
  'session',
  'kubeconfig',
  'dsn',
];
const ENV_ARRAY_KEYS = new Set(['run_env_variables', 'env', 'envs', 'env_variables']);
const HARMLESS_KEYS = [
  'name',
  'spec',
  'metadata',
  'items',
  'config',
  'labels',
  'format',
  'type',
  'value',
  'key',
  'status',
  'template',
  'containers',
  'x',
  'data',
];

const harmlessKey = fc.oneof(
  fc.constantFrom(...HARMLESS_KEYS),
  fc.string({ minLength: 1, maxLength: 8 }).filter((k) => !ENV_ARRAY_KEYS.has(k) && k !== '__proto__'),
);
const scalar: fc.Arbitrary<Json> = fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.boolean(), fc.constant(null));

const { tree } = fc.letrec<{ tree: Json; node: Json }>((tie) => ({
  tree: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, tie('node')),
  node: fc.oneof(
    fc.array(tie('tree'), { maxLength: 4 }),
    fc.dictionary(harmlessKey, tie('tree'), { maxKeys: 4 }).map((d): Json => ({ ...d })),
  ),
}));

type Plant =
  | { kind: 'sensitiveKey'; key: string; nest: number }
  | { kind: 'secretData'; dataKey: string; marker: 'resource_type' | 'kind' }
  | { kind: 'envVar'; arrayKey: string };

const plantArb: fc.Arbitrary<Plant> = fc.oneof(
  fc.record({ kind: fc.constant('sensitiveKey' as const), key: fc.constantFrom(...SENSITIVE_KEYS), nest: fc.integer({ min: 0, max: 2 }) }),
  fc.record({
    kind: fc.constant('secretData' as const),
    dataKey: harmlessKey,
    marker: fc.constantFrom('resource_type' as const, 'kind' as const),
  }),
  fc.record({ kind: fc.constant('envVar' as const), arrayKey: fc.constantFrom(...ENV_ARRAY_KEYS) }),
);

function isContainer(value: Json): value is Json[] | JsonObject {
  return value !== null && typeof value === 'object';
}

/** The canary, possibly wrapped in harmless structure (`nest` levels). */
function wrapped(canary: string, nest: number): Json {
  let value: Json = canary;
  for (let i = 0; i < nest; i++) value = i % 2 === 0 ? [value, 'x'] : { inner: value };
  return value;
}

/** Walk `choices` down the tree (into random containers) and plant there; returns the new root. */
function plant(root: Json, choices: readonly number[], what: Plant, canary: string): Json {
  const top: Json = isContainer(root) ? root : { wrap: root };
  let node: Json[] | JsonObject = top as Json[] | JsonObject;
  for (const choice of choices) {
    const children = (Array.isArray(node) ? node : Object.values(node)).filter(isContainer);
    if (children.length === 0) break;
    node = children[choice % children.length] as Json[] | JsonObject;
  }
  const member: [string, Json] =
    what.kind === 'sensitiveKey'
      ? [what.key, wrapped(canary, what.nest)]
      : what.kind === 'secretData'
        ? [
            'planted',
            { name: 'n', [what.marker]: what.marker === 'kind' ? 'Secret' : 'secret_generic_v2', data: { [what.dataKey]: canary } },
          ]
        : [
            'planted',
            {
              [what.arrayKey]: [
                { type: 'literal', name: 'LOG_LEVEL', value: 'info' },
                { type: 'literal', name: 'X_TOKEN', value: canary },
              ],
            },
          ];
  if (Array.isArray(node)) node.push({ [member[0]]: member[1] });
  else node[member[0]] = member[1];
  return top;
}

describe('property: planted canaries never survive', () => {
  test('sensitive keys, secret data and credential env vars at random depths', () => {
    fc.assert(
      fc.property(
        tree,
        fc.array(fc.nat(), { maxLength: 6 }),
        plantArb,
        fc.stringMatching(/^[0-9a-f]{12}$/),
        fc.boolean(),
        (base, choices, what, hex, secretBearing) => {
          const canary = `CANARY-${hex}`;
          const body = plant(structuredClone(base), choices, what, canary);
          expect(JSON.stringify(body)).toContain(canary);
          const out = redactor.redactBody(body, secretBearing);
          expect(JSON.stringify(out)).not.toContain(canary);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('a body with no credentials and no secrets is returned unchanged', () => {
    const plainKey = fc.constantFrom(
      'name',
      'spec',
      'items',
      'labels',
      'format',
      'type',
      'value',
      'image_reference',
      'region',
      'href',
      'scale',
    );
    const plainScalar: fc.Arbitrary<Json> = fc.oneof(
      fc.stringMatching(/^[a-z0-9 .:-]{0,12}$/),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
    );
    const { plainTree } = fc.letrec<{ plainTree: Json }>((tie) => ({
      plainTree: fc.oneof(
        { depthSize: 'small' },
        plainScalar,
        fc.array(tie('plainTree'), { maxLength: 4 }),
        fc.dictionary(plainKey, tie('plainTree'), { maxKeys: 4 }).map((d): Json => ({ ...d })),
      ),
    }));
    fc.assert(
      fc.property(plainTree, fc.boolean(), (body, secretBearing) => {
        expect(redactor.redactBody(structuredClone(body), secretBearing)).toEqual(body);
      }),
      { numRuns: 300 },
    );
  });
});

describe('"__proto__" keys, as JSON.parse makes them', () => {
  // Regression: assigning obj.__proto__ sets the prototype and leaves the parsed own property, value and all.
  test.each([
    '{"__proto__": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}',
    '{"a": {"__proto__": "-----BEGIN PRIVATE KEY-----\\nCANARYPROTO"}}',
    '{"__proto__": {"password": "CANARYPROTO"}}',
    '{"kind": "Secret", "data": {"__proto__": "CANARYPROTO"}}',
    '{"run_env_variables": [{"name": "API_KEY", "__proto__": "x", "value": "CANARYPROTO"}]}',
  ])('%s', (text) => {
    const redactor = loadRedactor();
    const out = JSON.stringify(redactor.redactBody(JSON.parse(text) as Json, false));
    expect(out).not.toContain('CANARYPROTO');
    expect(out).not.toContain('BEGIN PRIVATE KEY');
    expect(out).not.toContain('c2lnbmF0dXJl');
  });
});
