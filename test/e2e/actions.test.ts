/**
 * Every action name of the seed document (shared/seed: IBM's table of November 2020, all 37 names, spelling
 * included) and its `current` edition counterpart, each produced by a real call to a Code Engine look-alike
 * through each front end (the standalone gateway; an Express app with the audit middleware in front of
 * http-proxy-middleware, and in front of createCodeEngineProxy): exactly one schema-valid event per call, with
 * the right action, target, outcome and reason.
 */
import request from 'supertest';
import type { AuditEvent } from '../../src/types';
import { FRONT_ENDS, startFrontEnd } from '../support/express-harness';
import { iamToken, USER_CLAIMS, type AuditHarness } from '../support/harness';

const AUTH = `Bearer ${iamToken(USER_CLAIMS)}`;
const ACCOUNT = USER_CLAIMS.account.bss;
const NS = 'ns4svg40kna19';

interface Ctx {
  project: string;
  spareProject: string;
}

interface Call {
  /** The seed's name (2020 edition) and IBM's revised name (current edition). */
  actions: { '2020': string; current: string };
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: (c: Ctx) => string;
  body?: Record<string, unknown>;
  ifMatch?: boolean;
  status: number;
  /** Expected target.name and the project in target.id. */
  name: (c: Ctx) => string;
  project: (c: Ctx) => string;
  typeURI: { '2020': string; current: string };
}

const P = (c: Ctx): string => `/v2/projects/${c.project}`;
const proj = (c: Ctx): string => c.project;
const named = (n: string) => (): string => n;

function crud(
  object2020: string,
  objectCurrent: string,
  collection: string,
  name: string,
  createBody: Record<string, unknown>,
  update: { method: 'PUT' | 'PATCH'; body: Record<string, unknown> },
  createStatus = 201,
): Call[] {
  const t = { '2020': `codeengine/${object2020}`, current: `codeengine/${objectCurrent}` };
  const a = (verb: string, currentVerb = verb) => ({
    '2020': `codeengine.${object2020}.${verb}`,
    current: `codeengine.${objectCurrent}.${currentVerb}`,
  });
  return [
    {
      actions: a('create'),
      method: 'POST',
      path: (c) => `${P(c)}/${collection}`,
      body: { name, ...createBody },
      status: createStatus,
      name: named(name),
      project: proj,
      typeURI: t,
    },
    {
      actions: a('read'),
      method: 'GET',
      path: (c) => `${P(c)}/${collection}/${name}`,
      status: 200,
      name: named(name),
      project: proj,
      typeURI: t,
    },
    { actions: a('read', 'list'), method: 'GET', path: (c) => `${P(c)}/${collection}`, status: 200, name: proj, project: proj, typeURI: t },
    {
      actions: a('update'),
      method: update.method,
      path: (c) => `${P(c)}/${collection}/${name}`,
      body: update.body,
      ifMatch: true,
      status: 200,
      name: named(name),
      project: proj,
      typeURI: t,
    },
    {
      actions: a('delete'),
      method: 'DELETE',
      path: (c) => `${P(c)}/${collection}/${name}`,
      status: 202,
      name: named(name),
      project: proj,
      typeURI: t,
    },
  ];
}

const PING = `/apis/sources.knative.dev/v1/namespaces/${NS}/pingsources`;
const sub = { '2020': 'codeengine/subscription', current: 'codeengine/subscription' };

const CALLS: Call[] = [
  // project: created in set-up (its id is the context); the spare project is deleted at the end, and with no
  // body in the answer its id stands as its name.
  {
    actions: { '2020': 'codeengine.project.read', current: 'codeengine.project.read' },
    method: 'GET',
    path: (c) => P(c),
    status: 200,
    name: named('audited-project'),
    project: proj,
    typeURI: { '2020': 'codeengine/project', current: 'codeengine/project' },
  },
  {
    actions: { '2020': 'codeengine.project.read', current: 'codeengine.project.read' },
    method: 'GET',
    path: () => '/v2/projects',
    status: 200,
    name: named(''),
    project: named(''),
    typeURI: { '2020': 'codeengine/project', current: 'codeengine/project' },
  },
  {
    actions: { '2020': 'codeengine.project.update', current: 'codeengine.project.update' },
    method: 'PATCH',
    path: (c) => P(c),
    body: { tags: ['audited'] },
    ifMatch: true,
    status: 200,
    name: named('audited-project'),
    project: proj,
    typeURI: { '2020': 'codeengine/project', current: 'codeengine/project' },
  },
  {
    actions: { '2020': 'codeengine.projectconfig.read', current: 'codeengine.projectconfig.read' },
    method: 'GET',
    path: (c) => `/api/v1/project/${c.project}/config`,
    status: 200,
    name: proj,
    project: proj,
    typeURI: { '2020': 'codeengine/projectconfig', current: 'codeengine/projectconfig' },
  },
  ...crud(
    'appliction',
    'application',
    'apps',
    'hello-app',
    { image_reference: 'icr.io/codeengine/helloworld' },
    { method: 'PATCH', body: { scale_max_instances: 3 } },
  ),
  ...crud(
    'configmaps',
    'configmap',
    'config_maps',
    'app-settings',
    { data: { LOG_LEVEL: 'debug' } },
    { method: 'PUT', body: { data: { LOG_LEVEL: 'info' } } },
  ),
  ...crud(
    'secrets',
    'secret',
    'secrets',
    'db-creds',
    { format: 'generic', data: { password: 's3cr3t' } },
    { method: 'PUT', body: { format: 'generic', data: { password: 'n3w' } } },
  ),
  ...crud(
    'build',
    'build',
    'builds',
    'hello-build',
    { source_url: 'https://github.com/IBM/CodeEngine', strategy_type: 'dockerfile', output_image: 'icr.io/x/y', output_secret: 'reg' },
    { method: 'PATCH', body: { source_revision: 'main' } },
  ),
  ...crud(
    'buildrun',
    'buildrun',
    'build_runs',
    'hello-build-run-1',
    { build_name: 'hello-build' },
    { method: 'PATCH', body: { timeout: 600 } },
    202,
  ),
  ...crud(
    'job',
    'job',
    'jobs',
    'nightly',
    { image_reference: 'icr.io/codeengine/firstjob' },
    { method: 'PATCH', body: { scale_array_spec: '0-4' } },
  ),
  ...crud(
    'jobrun',
    'jobrun',
    'job_runs',
    'nightly-run-1',
    { job_name: 'nightly' },
    { method: 'PATCH', body: { scale_retry_limit: 2 } },
    202,
  ),
  // Eventing subscriptions live in the Kubernetes API only; the namespace stands for the project.
  {
    actions: { '2020': 'codeengine.subscription.create', current: 'codeengine.subscription.create' },
    method: 'POST',
    path: () => PING,
    body: { apiVersion: 'sources.knative.dev/v1', kind: 'PingSource', metadata: { name: 'every-minute' }, spec: { schedule: '* * * * *' } },
    status: 201,
    name: named('every-minute'),
    project: named(NS),
    typeURI: sub,
  },
  {
    actions: { '2020': 'codeengine.subscription.read', current: 'codeengine.subscription.read' },
    method: 'GET',
    path: () => `${PING}/every-minute`,
    status: 200,
    name: named('every-minute'),
    project: named(NS),
    typeURI: sub,
  },
  {
    actions: { '2020': 'codeengine.subscription.read', current: 'codeengine.subscription.list' },
    method: 'GET',
    path: () => PING,
    status: 200,
    name: named(NS),
    project: named(NS),
    typeURI: sub,
  },
  {
    actions: { '2020': 'codeengine.subscription.update', current: 'codeengine.subscription.update' },
    method: 'PUT',
    path: () => `${PING}/every-minute`,
    body: {
      apiVersion: 'sources.knative.dev/v1',
      kind: 'PingSource',
      metadata: { name: 'every-minute' },
      spec: { schedule: '*/5 * * * *' },
    },
    status: 200,
    name: named('every-minute'),
    project: named(NS),
    typeURI: sub,
  },
  {
    actions: { '2020': 'codeengine.subscription.delete', current: 'codeengine.subscription.delete' },
    method: 'DELETE',
    path: () => `${PING}/every-minute`,
    status: 200,
    name: named('every-minute'),
    project: named(NS),
    typeURI: sub,
  },
  {
    actions: { '2020': 'codeengine.project.delete', current: 'codeengine.project.delete' },
    method: 'DELETE',
    path: (c) => `/v2/projects/${c.spareProject}`,
    status: 202,
    name: (c) => c.spareProject,
    project: (c) => c.spareProject,
    typeURI: { '2020': 'codeengine/project', current: 'codeengine/project' },
  },
];

/** The 37 distinct names of the seed table (shared/seed/codeengine-activity-tracker-events-2020.md). */
const SEED_ACTIONS = [
  'codeengine.project.create',
  'codeengine.project.read',
  'codeengine.project.update',
  'codeengine.project.delete',
  'codeengine.projectconfig.read',
  'codeengine.appliction.create',
  'codeengine.appliction.read',
  'codeengine.appliction.update',
  'codeengine.appliction.delete',
  'codeengine.configmaps.create',
  'codeengine.configmaps.read',
  'codeengine.configmaps.update',
  'codeengine.configmaps.delete',
  'codeengine.secrets.create',
  'codeengine.secrets.read',
  'codeengine.secrets.update',
  'codeengine.secrets.delete',
  'codeengine.build.create',
  'codeengine.build.read',
  'codeengine.build.update',
  'codeengine.build.delete',
  'codeengine.buildrun.create',
  'codeengine.buildrun.read',
  'codeengine.buildrun.update',
  'codeengine.buildrun.delete',
  'codeengine.job.create',
  'codeengine.job.read',
  'codeengine.job.update',
  'codeengine.job.delete',
  'codeengine.jobrun.create',
  'codeengine.jobrun.read',
  'codeengine.jobrun.update',
  'codeengine.jobrun.delete',
  'codeengine.subscription.create',
  'codeengine.subscription.read',
  'codeengine.subscription.update',
  'codeengine.subscription.delete',
];

test('the call table covers every seed action name', () => {
  expect(new Set(SEED_ACTIONS).size).toBe(37);
  // codeengine.project.create is produced by every suite's set-up (below) and checked there.
  expect(new Set(['codeengine.project.create', ...CALLS.map((c) => c.actions['2020'])])).toEqual(new Set(SEED_ACTIONS));
});

async function createProject(h: AuditHarness, name: string): Promise<string> {
  const res = await request(h.url).post('/v2/projects').set('authorization', AUTH).send({ name });
  expect(res.status).toBe(202);
  return res.body.id as string;
}

const SUITES = FRONT_ENDS.flatMap((frontEnd) => (['2020', 'current'] as const).map((edition) => [frontEnd, edition] as const));

describe.each(SUITES)('%s, ACTION_CATALOG=%s', (frontEnd, edition) => {
  let h: AuditHarness;
  let ctx: Ctx;

  beforeAll(async () => {
    h = await startFrontEnd(frontEnd, { ACTION_CATALOG: edition });
    ctx = { project: await createProject(h, 'audited-project'), spareProject: await createProject(h, 'spare-project') };
  });
  afterAll(async () => {
    await h.close();
  });

  test('project creation is audited with the new project in target.id', async () => {
    const events = await h.waitForEvents(2);
    const created = events.filter((e) => e.action === 'codeengine.project.create');
    expect(created.map((e) => e.target.name)).toEqual(['audited-project', 'spare-project']);
    expect(created[0]?.target.id).toBe(`crn:v1:bluemix:public:codeengine:us-south:a/${ACCOUNT}:${ctx.project}::`);
    expect(created[0]?.reason).toEqual({ reasonCode: 202, reasonType: 'Accepted' });
  });

  // In order: each call relies on the ones before it (create, read, list, update, delete).
  test.each(
    CALLS.map((c, i) => [`${c.method} ${c.path({ project: '{project}', spareProject: '{spare}' })} -> ${c.actions[edition]}`, i] as const),
  )('%s', async (_title, index) => {
    const call = CALLS[index] as Call;
    const txId = `tx-${edition}-${index}`;
    let req = request(h.url)[call.method.toLowerCase() as 'get'](call.path(ctx)).set('authorization', AUTH).set('x-transaction-id', txId);
    if (call.ifMatch) req = req.set('if-match', '*');
    const res = await (call.body ? req.send(call.body) : req);
    expect(res.status).toBe(call.status);
    expect(res.headers['x-transaction-id']).toBe(txId);

    const mine = (await h.waitForEvents(1)).filter((e: AuditEvent) => e.transactionID === txId);
    expect(mine).toHaveLength(1);
    const event = mine[0] as AuditEvent;
    const project = call.project(ctx);
    expect(event).toMatchObject({
      action: call.actions[edition],
      outcome: 'success',
      reason: { reasonCode: call.status },
      correlationId: txId,
      target: {
        id: `crn:v1:bluemix:public:codeengine:us-south:a/${ACCOUNT}:${project}::`,
        name: call.name(ctx),
        typeURI: call.typeURI[edition],
      },
      initiator: { id: USER_CLAIMS.iam_id, name: USER_CLAIMS.name, credential: { type: 'apikey' } },
      requestData: { method: call.method },
    });
    expect(event.reason.reasonForFailure).toBeUndefined();
    if (call.body) expect(event.requestData.body).toBeDefined();
  });

  test('each call produced exactly one event', async () => {
    const events = await h.waitForEvents(CALLS.length + 2);
    expect(events).toHaveLength(CALLS.length + 2);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
  });
});
