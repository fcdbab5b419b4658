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
