import { EventBuilder, fitToLimit, MAX_EVENT_BYTES, NOT_INCLUDED_TEXT, type Exchange } from '../../src/audit/event-builder';
import { loadRedactor } from '../../src/audit/redact';
import { GatewayError } from '../../src/errors';
import { parseRequestTarget } from '../../src/http/request-target';
import { identityFromClaims, PUBLIC_ACCESS } from '../../src/identity/initiator';
import { BodyCapture } from '../../src/proxy/body-capture';
import { loadCatalog } from '../../src/routing/catalog';
import type { ActionEdition, AuditEvent } from '../../src/types';
import { validateEvent } from '../support/harness';

const catalogs = { '2020': loadCatalog('2020'), current: loadCatalog('current') };
const redactor = loadRedactor();

function builder(edition: ActionEdition = 'current', overrides: Partial<ConstructorParameters<typeof EventBuilder>[0]> = {}): EventBuilder {
  return new EventBuilder({
    catalog: catalogs[edition],
    redactor,
    edition,
    accountId: 'acct1',
    namespaceProjects: new Map([['ns1', 'proj-guid-1']]),
    responseData: 'all',
    ...overrides,
  });
}

function capture(body: unknown, limit = 65536): BodyCapture {
  const c = new BodyCapture(limit);
  c.add(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
  return c;
}

function exchange(method: string, url: string, over: Partial<Exchange> = {}): Exchange {
  const target = parseRequestTarget(url);
  return {
    transactionId: 'tx-1',
    startedAt: Date.UTC(2026, 10, 25, 18, 34, 24, 129),
    method,
    target,
    match: catalogs.current.match(method, target.segments),
    region: 'eu-de',
    identity: identityFromClaims({ iam_id: 'IBMid-1', name: 'Jo', grant_type: 'urn:ibm:params:oauth:grant-type:passcode' }),
    pendingIdentity: undefined,
    clientAddress: '10.1.2.3',
    clientAddressType: 'IPv4',
    agent: 'ibm-cloud-sdk',
    requestBody: undefined,
    requestContentType: 'application/json',
    status: 200,
    responseBody: undefined,
    responseContentType: 'application/json',
    error: undefined,
    incomplete: false,
    streaming: false,
    ...over,
  };
}

function build(x: Exchange, b = builder()): AuditEvent {
  const recorded = b.build(x);
  expect(Buffer.byteLength(recorded.json)).toBeLessThanOrEqual(MAX_EVENT_BYTES);
  const event = validateEvent(JSON.parse(recorded.json));
  expect(recorded).toMatchObject({ id: event.id, region: x.region, eventTime: event.eventTime });
  return event;
}

test('a successful update: every Activity Tracker field', () => {
  const e = build(
    exchange('PATCH', '/v2/projects/proj-guid-9/apps/web', {
      requestBody: capture({ scale_max_instances: 3 }),
      responseBody: capture({ name: 'web', scale_max_instances: 3 }),
    }),
  );
  expect(e).toEqual({
    id: e.id,
    eventType: 'activity',
    typeURI: 'http://schemas.dmtf.org/cloud/audit/1.0/event',
    eventTime: '2026-11-25T18:34:24.12+0000',
    action: 'codeengine.application.update',
    outcome: 'success',
    reason: { reasonCode: 200, reasonType: 'OK' },
    severity: 'warning',
    message: 'Code Engine: update application web',
    initiator: {
      id: 'IBMid-1',
      name: 'Jo',
      typeURI: 'service/security/account/user',
      credential: { type: 'user', verified: false },
      host: { address: '10.1.2.3', addressType: 'IPv4', agent: 'ibm-cloud-sdk' },
    },
    target: { id: 'crn:v1:bluemix:public:codeengine:eu-de:a/acct1:proj-guid-9::', name: 'web', typeURI: 'codeengine/application' },
    observer: { name: 'ActivityTracker' },
    transactionID: 'tx-1',
    correlationId: 'tx-1',
    requestData: { method: 'PATCH', path: '/v2/projects/proj-guid-9/apps/web', body: { scale_max_instances: 3 } },
    responseData: { name: 'web', scale_max_instances: 3 },
    dataEvent: false,
    logSourceCRN: 'crn:v1:bluemix:public:codeengine:eu-de:a/acct1:proj-guid-9::',
    saveServiceCopy: true,
  });
});

test('the 2020 edition names and types the same call as IBM did in 2020', () => {
  const x = exchange('GET', '/v2/projects/p/config_maps');
  const e = build(x, builder('2020'));
  expect(e.action).toBe('codeengine.configmaps.read');
  expect(e.target.typeURI).toBe('codeengine/configmaps');
  expect(e.message).toBe('Code Engine: read configmap p');
});

test('kubectl: the namespace maps to its project; unmapped namespaces stand for themselves', () => {
  expect(build(exchange('GET', '/api/v1/namespaces/ns1/pods')).target.id).toBe(
    'crn:v1:bluemix:public:codeengine:eu-de:a/acct1:proj-guid-1::',
  );
  expect(build(exchange('GET', '/api/v1/namespaces/other/pods')).target.id).toBe('crn:v1:bluemix:public:codeengine:eu-de:a/acct1:other::');
});

test("the token's account wins over CE_ACCOUNT_ID; no account at all leaves the scope empty", () => {
  const withAccount = exchange('GET', '/v2/projects/p', {
    identity: identityFromClaims({ iam_id: 'IBMid-2', account: { bss: 'tokenacct' } }),
  });
  expect(build(withAccount).target.id).toBe('crn:v1:bluemix:public:codeengine:eu-de:a/tokenacct:p::');
  expect(build(exchange('GET', '/v2/projects/p'), builder('current', { accountId: undefined })).target.id).toBe(
    'crn:v1:bluemix:public:codeengine:eu-de::p::',
  );
});

test('no token: public-access initiator', () => {
  const e = build(exchange('GET', '/v2/projects', { identity: PUBLIC_ACCESS }));
  expect(e.initiator).toMatchObject({ id: 'public-access', credential: { type: 'public-access' } });
  expect(e.target.id).toBe('crn:v1:bluemix:public:codeengine:eu-de:a/acct1:::');
});

test('a create takes its name from the body, else from the response', () => {
  expect(build(exchange('POST', '/v2/projects/p/jobs', { status: 201, requestBody: capture({ name: 'nightly' }) })).target.name).toBe(
    'nightly',
  );
  const runFromResponse = exchange('POST', '/v2/projects/p/job_runs', {
    status: 202,
    requestBody: capture({ job_name: 'nightly' }),
    responseBody: capture({ name: 'nightly-run-x1' }),
  });
  expect(build(runFromResponse, builder('current', { responseData: 'none' })).target.name).toBe('nightly-run-x1');
});

test('failure: reason from the error body, severity raised by the status, message suffixed', () => {
  const e = build(
    exchange('GET', '/v2/projects/p/apps/a', {
      status: 401,
      responseBody: capture({ errors: [{ code: 'unauthorized', message: 'Token expired.' }], status_code: 401 }),
    }),
  );
  expect(e).toMatchObject({
    outcome: 'failure',
    severity: 'critical',
    reason: { reasonCode: 401, reasonType: 'Unauthorized', reasonForFailure: 'Token expired.' },
    message: 'Code Engine: read application a -failure',
  });
});

test('failure without a readable body: the status phrase is the reason', () => {
  const e = build(
    exchange('DELETE', '/v2/projects/p/builds/b', {
      status: 503,
      responseBody: capture('<html>busy</html>'),
      responseContentType: 'text/html',
    }),
  );
  expect(e.reason.reasonForFailure).toBe('503 Service Unavailable');
});

test('network failure and client abort', () => {
  const down = build(
    exchange('GET', '/v2/projects/p', {
      status: 502,
      error: new GatewayError('ERR_UPSTREAM_UNREACHABLE', 'Code Engine upstream x is unreachable (ECONNREFUSED).'),
    }),
  );
  expect(down).toMatchObject({
    outcome: 'failure',
    reason: { reasonCode: 502, reasonForFailure: 'Code Engine upstream x is unreachable (ECONNREFUSED).' },
  });
  const gone = build(
    exchange('GET', '/v2/projects/p', {
      status: undefined,
      incomplete: true,
      error: new GatewayError('ERR_CLIENT_ABORTED', 'The client closed the connection.'),
    }),
  );
  expect(gone).toMatchObject({ outcome: 'unknown', reason: { reasonCode: 499, reasonType: 'Client Closed Request' } });
  expect(gone.message).toMatch(/ -failure$/);
});

test('kubeconfig reads never carry the response, and are critical', () => {
  const e = build(
    exchange('GET', '/api/v1/project/p/config', { responseBody: capture('{"kind":"Config","users":[{"user":{"token":"abc"}}]}') }),
  );
  expect(e.responseData).toBeUndefined();
  expect(e.severity).toBe('critical');
  expect(e.action).toBe('codeengine.projectconfig.read');
});

test('streaming reads (watch) are recorded without a response body', () => {
  const e = build(exchange('GET', '/api/v1/namespaces/ns1/pods?watch=true', { streaming: true, responseBody: capture({ type: 'ADDED' }) }));
  expect(e.responseData).toBeUndefined();
  expect(e.outcome).toBe('success');
});

test('AUDIT_RESPONSE_DATA=failures keeps response bodies of failures only', () => {
  const b = builder('current', { responseData: 'failures' });
  expect(build(exchange('GET', '/v2/projects/p/apps/a', { responseBody: capture({ name: 'a' }) }), b).responseData).toBeUndefined();
  expect(
    build(exchange('GET', '/v2/projects/p/apps/a', { status: 404, responseBody: capture({ errors: [{ message: 'nope' }] }) }), b)
      .responseData,
  ).toEqual({
    errors: [{ message: 'nope' }],
  });
});

test('AUDIT_RESPONSE_DATA=changes (the default) keeps response bodies of calls that change something, and of failures', () => {
  const b = builder('current', { responseData: 'changes' });
  const read = build(exchange('GET', '/v2/projects/p/apps/a', { responseBody: capture({ name: 'a', image_reference: 'icr.io/x' }) }), b);
  expect(read.responseData).toBeUndefined();
  // The name still comes from the path; nothing else about the read is lost.
  expect(read.target.name).toBe('a');
  expect(read.action).toBe('codeengine.application.read');
  const created = build(
    exchange('POST', '/v2/projects/p/apps', {
      status: 201,
      requestBody: capture({ name: 'web' }),
      responseBody: capture({ name: 'web', id: 'i1' }),
    }),
    b,
  );
  expect(created.responseData).toEqual({ name: 'web', id: 'i1' });
  const deleted = build(exchange('DELETE', '/v2/projects/p/apps/a', { status: 202, responseBody: capture({ status: 'deleting' }) }), b);
  expect(deleted.responseData).toEqual({ status: 'deleting' });
  const failedRead = build(
    exchange('GET', '/v2/projects/p/apps/a', { status: 404, responseBody: capture({ errors: [{ message: 'nope' }] }) }),
    b,
  );
  expect(failedRead.responseData).toEqual({ errors: [{ message: 'nope' }] });
  expect(failedRead.reason.reasonForFailure).toBe('nope');
  for (const e of [read, created, deleted, failedRead]) validateEvent(e);
});

test('a response too large for the event is replaced by IBM text, without being parsed', () => {
  const items = Array.from({ length: 600 }, (_, i) => ({ name: `app-${i}`, image_reference: 'icr.io/codeengine/helloworld' }));
  const e = build(exchange('GET', '/v2/projects/p/apps', { responseBody: capture({ apps: items }) }));
  expect(e.responseData).toBe(NOT_INCLUDED_TEXT);
});

test('a body larger than the capture limit is described, never quoted', () => {
  const big = capture({ name: 'x', data: 'y'.repeat(2000) }, 1000);
  const e = build(exchange('POST', '/v2/projects/p/config_maps', { status: 201, requestBody: big }));
  expect(e.requestData.body).toBeUndefined();
  expect(e.requestData.bodyOmitted).toMatch(/larger than the 1000 bytes capture limit/);
});

test('over 16 KB: responseData goes first, then requestData', () => {
  const body = { name: 'cm', data: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'v'.repeat(300)])) };
  const e = build(exchange('PUT', '/v2/projects/p/config_maps/cm', { requestBody: capture(body), responseBody: capture(body) }));
  expect(e.responseData).toBe(NOT_INCLUDED_TEXT);
  expect(e.requestData.body).toEqual(body);

  const huge = { name: 'cm', data: Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`k${i}`, 'v'.repeat(300)])) };
  const e2 = build(exchange('PUT', '/v2/projects/p/config_maps/cm', { requestBody: capture(huge), responseBody: capture(huge) }));
  expect(e2.responseData).toBe(NOT_INCLUDED_TEXT);
  expect(e2.requestData).toEqual({ method: 'PUT', bodyOmitted: NOT_INCLUDED_TEXT });
});

test('fitToLimit leaves small events alone', () => {
  const e = build(exchange('GET', '/v2/projects/p'));
  expect(fitToLimit({ ...e })).toBe(JSON.stringify(e));
});

test('secret values never reach requestData or responseData', () => {
  const secret = { name: 's', format: 'generic', data: { password: 'hunter2' } };
  const e = build(
    exchange('PUT', '/v2/projects/p/secrets/s', {
      requestBody: capture(secret),
      responseBody: capture({ ...secret, resource_type: 'secret_generic_v2' }),
    }),
  );
  expect(JSON.stringify(e)).not.toContain('hunter2');
  expect(e.requestData.body).toEqual({ name: 's', format: 'generic', data: { password: '[REDACTED]' } });
  expect(e.severity).toBe('critical');
});
