import request from 'supertest';
import { iamToken, startHarness, USER_CLAIMS, type Harness } from '../support/harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

test('a project and an app created through the gateway each yield one event', async () => {
  const auth = `Bearer ${iamToken(USER_CLAIMS)}`;
  const p = await request(h.url).post('/v2/projects').set('authorization', auth).send({ name: 'proj-a' });
  expect(p.status).toBe(202);
  const projectId = p.body.id as string;
  const a = await request(h.url)
    .post(`/v2/projects/${projectId}/apps`)
    .set('authorization', auth)
    .send({ name: 'app-a', image_reference: 'icr.io/x' });
  expect(a.status).toBe(201);
  const events = await h.waitForEvents(2);
  expect(events.map((e) => [e.action, e.target.name, e.outcome])).toEqual([
    ['codeengine.project.create', 'proj-a', 'success'],
    ['codeengine.appliction.create', 'app-a', 'success'],
  ]);
  expect(events[1]?.target.id).toBe(`crn:v1:bluemix:public:codeengine:us-south:a/${USER_CLAIMS.account.bss}:${projectId}::`);
});

describe('behind a trusted proxy, with a namespace map', () => {
  let t: Harness;
  beforeAll(async () => {
    t = await startHarness({ TRUSTED_PROXIES: '127.0.0.0/8', CE_NAMESPACE_MAP: 'ns4svg40kna19=0b4d2c1e-5f6a-4b7c-8d9e-0f1a2b3c4d5e' });
  });
  afterAll(() => t.close());

  test('X-Forwarded-For from a trusted peer names the client; the namespace names its project', async () => {
    await request(t.url)
      .get('/api/v1/namespaces/ns4svg40kna19/pods')
      .set('x-forwarded-for', '198.51.100.7, 127.0.0.2')
      .set('user-agent', 'kubectl/v1.31.0')
      .set('x-transaction-id', 'tp-1');
    const [e] = (await t.waitForEvents(1)).filter((x) => x.transactionID === 'tp-1');
    expect(e?.initiator.host).toEqual({ address: '198.51.100.7', addressType: 'IPv4', agent: 'kubectl/v1.31.0' });
    expect(e?.target.id).toBe(
      'crn:v1:bluemix:public:codeengine:us-south:a/acc0123456789abcdef0123456789abcd:0b4d2c1e-5f6a-4b7c-8d9e-0f1a2b3c4d5e::',
    );
  });
});

test('without TRUSTED_PROXIES a forged X-Forwarded-For is not believed', async () => {
  await request(h.url).get('/v2/function_runtimes').set('x-forwarded-for', '203.0.113.66').set('x-transaction-id', 'xff-forged');
  const [e] = (await h.waitForEvents(3)).filter((x) => x.transactionID === 'xff-forged');
  expect(e?.initiator.host.address).toBe('127.0.0.1');
});

describe('a response is complete for the client only once its event is durable', () => {
  test.each([
    ['a body with Content-Length', '/v2/function_runtimes', 'GET'],
    ['a chunked body', '/api/v1/namespaces/ns1/pods/p1/log?bytes=100000', 'GET'],
    ['no body (HEAD)', '/v2/_download?bytes=10', 'HEAD'],
  ])('%s', async (_what, path, method) => {
    const recorder = h.gateway.recorder;
    const original = recorder.record.bind(recorder);
    let recordedAt = 0;
    const spy = jest.spyOn(recorder, 'record').mockImplementation(async (event) => {
      await new Promise((r) => setTimeout(r, 300));
      await original(event);
      recordedAt = Date.now();
    });
    try {
      const res = await (method === 'HEAD' ? request(h.url).head(path) : request(h.url).get(path));
      const completedAt = Date.now();
      expect(res.status).toBe(200);
      expect(recordedAt).toBeGreaterThan(0);
      expect(completedAt).toBeGreaterThanOrEqual(recordedAt);
    } finally {
      spy.mockRestore();
    }
  });
});
