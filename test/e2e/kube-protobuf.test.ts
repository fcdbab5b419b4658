/**
 * Kubernetes protobuf through the gateway (what kubectl 1.32 and client-go programs send for built-in kinds):
 * the event names the object created, from the request or, for a generated name, from the response, and the
 * body is never quoted.
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { encodeKubeProtobuf } from '../support/kube-protobuf';
import { iamToken, startHarness, USER_CLAIMS, type Harness } from '../support/harness';

const PROTOBUF = 'application/vnd.kubernetes.protobuf';
const CANARY = 'PBCANARY7c1f';
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ ACTION_CATALOG: 'current', AUDIT_RESPONSE_DATA: 'all' });
});
afterAll(() => h.close());

async function send(method: string, urlPath: string, txId: string, body?: Buffer): Promise<{ status: number; type: string | undefined }> {
  const res = await request(`${h.url}${urlPath}`, {
    method: method as 'POST',
    headers: {
      authorization: `Bearer ${iamToken(USER_CLAIMS)}`,
      'x-transaction-id': txId,
      accept: `${PROTOBUF},application/json`,
      ...(body ? { 'content-type': PROTOBUF } : {}),
    },
    body,
    signal: AbortSignal.timeout(5000),
  });
  await res.body.arrayBuffer();
  return { status: res.statusCode, type: res.headers['content-type'] as string | undefined };
}

async function everythingWritten(): Promise<string> {
  let text = h.logs();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(p);
      else text += (await readFile(p)).toString('latin1');
    }
  };
  await walk(h.journalDir);
  await walk(h.spoolDir);
  return text;
}

test('a config map created in protobuf is audited with its name, its data never quoted', async () => {
  const body = encodeKubeProtobuf({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'pb-config' }, data: { password: CANARY } });
  const res = await send('POST', '/api/v1/namespaces/ns1/configmaps', 'pb-create-1', body);
  expect(res).toEqual({ status: 201, type: PROTOBUF });
  const [e] = await h.eventsFor('pb-create-1');
  expect(e).toMatchObject({
    action: 'codeengine.configmap.create',
    outcome: 'success',
    target: { name: 'pb-config' },
    message: 'Code Engine: create configmap pb-config',
    requestData: { bodyOmitted: expect.stringMatching(/^application\/vnd\.kubernetes\.protobuf body of \d+ bytes is not JSON/) },
  });
  expect(e?.requestData.body).toBeUndefined();
  expect(e?.responseData).toBeUndefined();
});

test('a secret with a generated name is audited with the name the server gave it (from the protobuf answer)', async () => {
  const body = encodeKubeProtobuf({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { generateName: 'pb-secret-' },
    data: { token: Buffer.from(CANARY).toString('base64') },
  });
  expect((await send('POST', '/api/v1/namespaces/ns1/secrets', 'pb-create-2', body)).status).toBe(201);
  const [e] = await h.eventsFor('pb-create-2');
  expect(e?.action).toBe('codeengine.secret.create');
  expect(e?.target.name).toMatch(/^pb-secret-[0-9a-f]{5}$/);
});

test('no protobuf value reaches the journal, the spool or the logs', async () => {
  await h.events();
  const written = await everythingWritten();
  expect(written).not.toContain(CANARY);
  expect(written).not.toContain(Buffer.from(CANARY).toString('base64'));
});
