import { createHash } from 'node:crypto';
import { FAKE_KUBE_TOKEN, startFakeCodeEngine, type FakeCodeEngine } from '../support/fake-code-engine';
import { decodeKubeProtobuf, encodeKubeProtobuf } from '../support/kube-protobuf';

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json(): unknown;
}

let fake: FakeCodeEngine;

beforeAll(async () => {
  fake = await startFakeCodeEngine();
});

afterAll(async () => {
  await fake.close();
});

beforeEach(() => {
  fake.reset();
});

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json', ...headers };
  }
  const res = await fetch(`${fake.url}${path}`, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as unknown };
}

async function newProject(name = 'proj'): Promise<string> {
  const reply = await call('POST', '/v2/projects', { name });
  expect(reply.status).toBe(202);
  const { id } = reply.json() as { id: string };
  return id;
}

const TRACE = expect.stringMatching(/^codeengine-api-[0-9a-f]+$/) as unknown;

function ceErrorBody(status: number, code: string, message: unknown): unknown {
  return { errors: [{ code, message }], trace: TRACE, status_code: status };
}

describe('v2 projects', () => {
  it('creates a project with the Code Engine shape', async () => {
    const reply = await call('POST', '/v2/projects', { name: 'p1', resource_group_id: 'rg1' });
    expect(reply.status).toBe(202);
    const project = reply.json() as Record<string, unknown>;
    expect(project).toMatchObject({
      name: 'p1',
      region: 'us-south',
      status: 'creating',
      resource_type: 'project_v2',
      resource_group_id: 'rg1',
    });
    expect(project.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(project.crn).toBe(`crn:v1:bluemix:public:codeengine:us-south:a/0f1e2d3c4b5a69788796a5b4c3d2e1f0:${String(project.id)}::`);
    const list = (await call('GET', '/v2/projects')).json() as { projects: unknown[] };
    expect(list.projects).toHaveLength(1);
    expect((await call('DELETE', `/v2/projects/${String(project.id)}`)).status).toBe(202);
    expect((await call('GET', `/v2/projects/${String(project.id)}`)).status).toBe(404);
  });
});

describe('v2 apps', () => {
  it('supports create/get/list/update/delete with If-Match', async () => {
    const pid = await newProject();
    const base = `/v2/projects/${pid}/apps`;

    const created = await call('POST', base, { name: 'app1', image_reference: 'icr.io/a/b' });
    expect(created.status).toBe(201);
    expect(created.headers.get('etag')).toBe('"1"');
    expect(created.json()).toMatchObject({
      name: 'app1',
      image_reference: 'icr.io/a/b',
      project_id: pid,
      resource_type: 'app_v2',
      entity_tag: '1',
      href: `${fake.url}${base}/app1`,
    });

    expect((await call('GET', `${base}/app1`)).json()).toMatchObject({ name: 'app1' });
    const list = (await call('GET', `${base}?limit=10`)).json() as { limit: number; first: { href: string }; apps: unknown[] };
    expect(list.limit).toBe(10);
    expect(list.first.href).toContain('/apps');
    expect(list.apps).toHaveLength(1);

    const patch = { scale_max_instances: 3 };
    const merge = { 'content-type': 'application/merge-patch+json' };
    const missing = await call('PATCH', `${base}/app1`, patch, merge);
    expect(missing.status).toBe(428);
    expect(missing.json()).toEqual(ceErrorBody(428, 'precondition_required', expect.any(String)));

    const stale = await call('PATCH', `${base}/app1`, patch, { ...merge, 'if-match': '"7"' });
    expect(stale.status).toBe(412);
    expect((stale.json() as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('precondition_failed');

    const ok = await call('PATCH', `${base}/app1`, { ...patch, name: 'renamed' }, { ...merge, 'if-match': '"1"' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('etag')).toBe('"2"');
    expect(ok.json()).toMatchObject({ name: 'app1', image_reference: 'icr.io/a/b', scale_max_instances: 3, entity_tag: '2' });

    const deleted = await call('DELETE', `${base}/app1`);
    expect(deleted.status).toBe(202);
    expect(deleted.text).toBe('');

    const gone = await call('GET', `${base}/app1`);
    expect(gone.status).toBe(404);
    expect(gone.headers.get('content-type')).toBe('application/json');
    expect(gone.json()).toEqual(ceErrorBody(404, 'resource_not_found', 'Resource not found.'));
  });

  it('answers 409, 404 and 400 on bad creates', async () => {
    const pid = await newProject();
    await call('POST', `/v2/projects/${pid}/apps`, { name: 'x' });
    const dup = await call('POST', `/v2/projects/${pid}/apps`, { name: 'x' });
    expect(dup.status).toBe(409);
    expect(dup.json()).toEqual(ceErrorBody(409, 'resource_already_exists', "Resource with name 'x' already exists."));

    const noProject = await call('POST', '/v2/projects/00000000-0000-0000-0000-000000000000/apps', { name: 'x' });
    expect(noProject.status).toBe(404);
    expect((await call('POST', `/v2/projects/${pid}/apps`, '{not json')).status).toBe(400);
    const noName = await call('POST', `/v2/projects/${pid}/apps`, { image_reference: 'x' });
    expect(noName.status).toBe(400);
    expect((noName.json() as { errors: Array<{ code: string }> }).errors[0]?.code).toBe('bad_request');
    expect((await call('GET', `/v2/projects/${pid}/widgets`)).status).toBe(404);
    expect((await call('GET', '/v2/nowhere')).status).toBe(404);
  });

  it('serves revisions and instances of an existing app', async () => {
    const pid = await newProject();
    await call('POST', `/v2/projects/${pid}/apps`, { name: 'web' });
    const revisions = (await call('GET', `/v2/projects/${pid}/apps/web/revisions`)).json() as { revisions: unknown[] };
    expect(revisions.revisions).toEqual([expect.objectContaining({ name: 'web-00001', app_name: 'web' })]);
    expect((await call('GET', `/v2/projects/${pid}/apps/web/revisions/web-00001`)).status).toBe(200);
    expect((await call('GET', `/v2/projects/${pid}/apps/web/revisions/web-00002`)).status).toBe(404);
    expect((await call('DELETE', `/v2/projects/${pid}/apps/web/revisions/web-00001`)).status).toBe(202);
    expect((await call('GET', `/v2/projects/${pid}/apps/nope/revisions`)).status).toBe(404);
    expect((await call('GET', `/v2/projects/${pid}/apps/web/instances`)).status).toBe(200);
    expect((await call('GET', `/v2/projects/${pid}/egress_ips`)).json()).toMatchObject({
      private: expect.any(Array),
      public: expect.any(Array),
    });
    expect((await call('GET', `/v2/projects/${pid}/status_details`)).status).toBe(200);
    expect((await call('GET', '/v2/function_runtimes')).status).toBe(200);
  });

  it('echoes X-Correlation-Id as X-Request-Id', async () => {
    const reply = await call('GET', '/v2/projects', undefined, { 'x-correlation-id': 'corr-123' });
    expect(reply.headers.get('x-request-id')).toBe('corr-123');
  });
});

describe('v2 secrets and runs', () => {
  it('stores secret data and replaces it with PUT + If-Match', async () => {
    const pid = await newProject();
    const base = `/v2/projects/${pid}/secrets`;
    const created = await call('POST', base, { name: 's1', format: 'generic', data: { password: 'hunter2' } });
    expect(created.status).toBe(201);
    expect(created.json()).toMatchObject({ name: 's1', resource_type: 'secret_generic_v2', data: { password: 'hunter2' } });
    expect((await call('GET', `${base}/s1`)).json()).toMatchObject({ data: { password: 'hunter2' } });

    expect((await call('PUT', `${base}/s1`, { format: 'generic', data: { k: 'v' } })).status).toBe(428);
    expect((await call('PUT', `${base}/s1`, { data: { k: 'v' } }, { 'if-match': '2' })).status).toBe(412);
    const replaced = await call('PUT', `${base}/s1`, { format: 'generic', data: { k: 'v' } }, { 'if-match': '*' });
    expect(replaced.status).toBe(200);
    const body = replaced.json() as Record<string, unknown>;
    expect(body).toMatchObject({ name: 's1', data: { k: 'v' }, entity_tag: '2' });
    expect(body.data).toEqual({ k: 'v' });

    expect((await call('PATCH', `${base}/s1`, { data: {} }, { 'if-match': '*' })).status).toBe(404);
    expect((await call('DELETE', `${base}/s1`)).status).toBe(202);
    expect((await call('DELETE', `${base}/s1`)).status).toBe(404);
  });

  it('generates names for job runs and ids for bindings', async () => {
    const pid = await newProject();
    const run = await call('POST', `/v2/projects/${pid}/job_runs`, { job_name: 'j' });
    expect(run.status).toBe(202);
    const { name } = run.json() as { name: string };
    expect(name).toMatch(/^jobrun-/);
    expect((await call('GET', `/v2/projects/${pid}/job_runs/${name}`)).status).toBe(200);

    const binding = await call('POST', `/v2/projects/${pid}/bindings`, {
      secret_name: 's',
      component: { name: 'a', resource_type: 'app_v2' },
    });
    expect(binding.status).toBe(201);
    const { id } = binding.json() as { id: string };
    expect((await call('GET', `/v2/projects/${pid}/bindings/${id}`)).json()).toMatchObject({ resource_type: 'binding_v2', id });
  });
});

describe('v1 kubeconfig', () => {
  it('serves a kubeconfig for known projects and any namespace id', async () => {
    const pid = await newProject();
    const reply = await call('GET', `/api/v1/project/${pid}/config`);
    expect(reply.status).toBe(200);
    expect(reply.headers.get('content-type')).toBe('text/plain');
    expect(reply.text).toContain(`token: ${FAKE_KUBE_TOKEN}`);
    expect((await call('GET', '/api/v1/project/unknown/config')).status).toBe(404);
    expect((await call('GET', '/api/v1/namespaces/4svg40kna19/config')).text).toContain('namespace: 4svg40kna19');
  });

  it('serves the kubeconfig given in the options', async () => {
    const other = await startFakeCodeEngine({ kubeconfig: 'custom: yes\ntoken: abc\n' });
    try {
      const res = await fetch(`${other.url}/api/v1/namespaces/x/config`);
      expect(await res.text()).toBe('custom: yes\ntoken: abc\n');
    } finally {
      await other.close();
    }
  });
});

describe('Kubernetes API', () => {
  const pods = '/api/v1/namespaces/ns1/pods';

  it('creates, gets, patches and deletes a pod', async () => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p1', labels: { a: '1' } },
      spec: { containers: [{ name: 'c', image: 'i' }] },
    };
    const created = await call('POST', pods, pod);
    expect(created.status).toBe(201);
    expect(created.json()).toMatchObject({ kind: 'Pod', metadata: { name: 'p1', namespace: 'ns1', uid: expect.any(String) } });

    const dup = await call('POST', pods, pod);
    expect(dup.status).toBe(409);
    expect(dup.json()).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'AlreadyExists', code: 409 });

    expect((await call('GET', `${pods}/p1`)).json()).toMatchObject({ metadata: { name: 'p1' } });
    const list = (await call('GET', pods)).json();
    expect(list).toMatchObject({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '1' }, items: [expect.anything()] });

    const merged = await call(
      'PATCH',
      `${pods}/p1`,
      { metadata: { labels: { b: '2' } } },
      { 'content-type': 'application/merge-patch+json' },
    );
    expect(merged.status).toBe(200);
    expect(merged.json()).toMatchObject({ metadata: { name: 'p1', labels: { a: '1', b: '2' } } });

    const ops = [
      { op: 'replace', path: '/spec/containers/0/image', value: 'i2' },
      { op: 'add', path: '/metadata/labels/c', value: '3' },
    ];
    const jsonPatched = await call('PATCH', `${pods}/p1`, ops, { 'content-type': 'application/json-patch+json' });
    expect(jsonPatched.status).toBe(200);
    expect(jsonPatched.json()).toMatchObject({ spec: { containers: [{ image: 'i2' }] }, metadata: { labels: { c: '3' } } });

    const deleted = await call('DELETE', `${pods}/p1`);
    expect(deleted.status).toBe(200);
    expect(deleted.json()).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'p1', kind: 'pods' } });

    const missing = await call('GET', `${pods}/p1`);
    expect(missing.status).toBe(404);
    expect(missing.json()).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'pods "p1" not found',
      reason: 'NotFound',
      details: { name: 'p1', kind: 'pods' },
      code: 404,
    });
  });

  it('stores custom resources per group', async () => {
    const path = '/apis/serving.knative.dev/v1/namespaces/ns1/services';
    expect((await call('POST', path, { metadata: { name: 'svc' } })).json()).toMatchObject({
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
    });
    expect((await call('GET', '/api/v1/namespaces/ns1/services/svc')).status).toBe(404);
    expect((await call('PUT', `${path}/svc`, { metadata: { name: 'svc' }, spec: { x: 1 } })).json()).toMatchObject({ spec: { x: 1 } });
    expect((await call('DELETE', path)).status).toBe(200);
    expect((await call('GET', path)).json()).toMatchObject({ kind: 'ServiceList', items: [] });
    for (const discovery of ['/api', '/apis', '/version']) expect((await call('GET', discovery)).status).toBe(200);
  });

  it('streams exactly the requested number of log bytes', async () => {
    const res = await fetch(`${fake.url}${pods}/p1/log?bytes=5000000`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain');
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(5_000_000);
    expect(body.subarray(0, 18).toString()).toBe('log line\nlog line\n');
    const expected = Buffer.from('log line\n'.repeat(Math.ceil(5_000_000 / 9))).subarray(0, 5_000_000);
    expect(body.equals(expected)).toBe(true);
  });
});

describe('streaming endpoints', () => {
  it('hashes a 5 MB upload without buffering it', async () => {
    const payload = Buffer.alloc(5 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) % 256;
    const res = await fetch(`${fake.url}/v2/_upload`, { method: 'PUT', body: payload });
    expect(await res.json()).toEqual({ received_bytes: payload.length, sha256: createHash('sha256').update(payload).digest('hex') });
    const recorded = fake.requests.at(-1);
    expect(recorded?.bodyBytes).toBe(payload.length);
    expect(recorded?.body.length).toBe(1024 * 1024);
  });

  it('downloads deterministic bytes', async () => {
    const res = await fetch(`${fake.url}/v2/_download?bytes=300000`);
    expect(res.headers.get('content-length')).toBe('300000');
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(300000);
    expect(body.every((byte, i) => byte === i % 251)).toBe(true);
  });

  it('echoes the request and sets multi-valued headers', async () => {
    const res = await fetch(`${fake.url}/v2/_echo?x=1`, { method: 'POST', headers: { 'X-Custom': 'v' }, body: 'hi' });
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(res.headers.get('x-upstream-header')).toBe('Mixed-Case-Value');
    expect(await res.json()).toMatchObject({ method: 'POST', url: '/v2/_echo?x=1', headers: { 'x-custom': 'v' } });
  });
});

describe('failure hooks', () => {
  it('injects a status without touching state', async () => {
    const pid = await newProject();
    const injected = await call('POST', `/v2/projects/${pid}/apps`, { name: 'a' }, { 'x-fake-status': '503' });
    expect(injected.status).toBe(503);
    expect(injected.json()).toEqual(ceErrorBody(503, 'service_unavailable', 'Injected failure 503.'));
    expect((await call('GET', `/v2/projects/${pid}/apps/a`)).status).toBe(404);

    const k8s = await call('GET', '/api/v1/namespaces/ns/pods', undefined, { 'x-fake-status': '500' });
    expect(k8s.status).toBe(500);
    expect(k8s.json()).toMatchObject({ kind: 'Status', status: 'Failure', message: 'Injected failure 500.', code: 500 });
  });

  it('delays the answer', async () => {
    const started = Date.now();
    expect((await call('GET', '/v2/projects', undefined, { 'x-fake-delay-ms': '150' })).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('resets the connection', async () => {
    await expect(fetch(`${fake.url}/v2/projects`, { headers: { 'x-fake-reset': '1' } })).rejects.toThrow();
    expect((await call('GET', '/v2/projects')).status).toBe(200);
  });

  it('hangs until the client gives up', async () => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 200);
    const started = Date.now();
    await expect(fetch(`${fake.url}/v2/projects`, { headers: { 'x-fake-hang': '1' }, signal: controller.signal })).rejects.toThrow();
    clearTimeout(timer);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(fake.requests.map((r) => r.path)).toContain('/v2/projects');
  });

  it('close() ends hanging requests', async () => {
    const other = await startFakeCodeEngine();
    const pending = fetch(`${other.url}/v2/projects`, { headers: { 'x-fake-hang': '1' } });
    const delayed = fetch(`${other.url}/v2/projects`, { headers: { 'x-fake-delay-ms': '60000' } });
    // Both expectations are attached before close(), so neither rejection is ever unhandled.
    const failed = Promise.all([expect(pending).rejects.toThrow(), expect(delayed).rejects.toThrow()]);
    while (other.requests.length < 2) await new Promise((r) => setTimeout(r, 10));
    await other.close();
    await failed;
  });
});

describe('Kubernetes API: what kubectl needs', () => {
  const ns = '/api/v1/namespaces/ns1';

  test('protobuf in and out: a config map created in protobuf is answered in protobuf, and reads back as JSON', async () => {
    const body = encodeKubeProtobuf({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'pb' }, data: { a: 'b' } });
    const res = await fetch(`${fake.url}${ns}/configmaps`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.kubernetes.protobuf', accept: 'application/vnd.kubernetes.protobuf,application/json' },
      body,
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/vnd.kubernetes.protobuf');
    expect(decodeKubeProtobuf(Buffer.from(await res.arrayBuffer()))).toMatchObject({
      kind: 'ConfigMap',
      metadata: { name: 'pb', namespace: 'ns1' },
      data: { a: 'b' },
    });
    expect((await call('GET', `${ns}/configmaps/pb`)).json()).toMatchObject({ kind: 'ConfigMap', data: { a: 'b' } });
  });

  test('a malformed protobuf body is a 400 Status', async () => {
    const res = await call('POST', `${ns}/configmaps`, 'k8s\u0000\u0012\u00ff', { 'content-type': 'application/vnd.kubernetes.protobuf' });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ kind: 'Status', reason: 'BadRequest' });
  });

  test("a Secret's stringData is stored in data, base64, as the API server does", async () => {
    const res = await call('POST', `${ns}/secrets`, {
      kind: 'Secret',
      metadata: { name: 's' },
      stringData: { token: 't0k' },
      data: { a: 'YQ==' },
    });
    expect(res.status).toBe(201);
    const stored = res.json() as Record<string, unknown>;
    expect(stored.stringData).toBeUndefined();
    expect(stored.data).toEqual({ a: 'YQ==', token: Buffer.from('t0k').toString('base64') });
  });

  test('the namespace reads, and fieldSelector=metadata.name picks one object (kubectl delete waits with it)', async () => {
    expect((await call('GET', ns)).json()).toMatchObject({ kind: 'Namespace', metadata: { name: 'ns1' }, status: { phase: 'Active' } });
    for (const name of ['one', 'two']) await call('POST', `${ns}/configmaps`, { kind: 'ConfigMap', metadata: { name } });
    const list = (await call('GET', `${ns}/configmaps?fieldSelector=metadata.name%3Dtwo`)).json() as {
      items: Array<{ metadata: { name: string } }>;
    };
    expect(list.items.map((i) => i.metadata.name)).toEqual(['two']);
  });
});
