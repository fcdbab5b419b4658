import fc from 'fast-check';
import { projectCrn } from '../../src/audit/crn';
import { EVENT_TIME_PATTERN, formatEventTime } from '../../src/audit/event-time';
import { bounded, failureMessageOf, MAX_REASON_LENGTH, reasonPhrase } from '../../src/audit/reason';
import type { Json } from '../../src/audit/redact';
import { severityFor } from '../../src/audit/severity';
import type { Region, Severity } from '../../src/types';

const MAX_EPOCH_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const EXACT_FORMAT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{2}\+0000$/;

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Independent reference: UTC fields, hundredths truncated. */
function referenceTime(ms: number): string {
  const d = new Date(ms);
  return (
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}` +
    `T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}.${pad(Math.floor(d.getUTCMilliseconds() / 10), 2)}+0000`
  );
}

describe('formatEventTime', () => {
  test('the documented example', () => {
    expect(formatEventTime(Date.UTC(2026, 10, 23, 19, 7, 50, 320))).toBe('2026-11-23T19:07:50.32+0000');
  });

  test('truncates to hundredths, never rounds', () => {
    expect(formatEventTime(Date.UTC(2026, 10, 23, 19, 7, 50, 329))).toBe('2026-11-23T19:07:50.32+0000');
    expect(formatEventTime(Date.UTC(2026, 10, 23, 19, 7, 50, 5))).toBe('2026-11-23T19:07:50.00+0000');
    expect(formatEventTime(Date.UTC(2026, 11, 31, 23, 59, 59, 999))).toBe('2026-12-31T23:59:59.99+0000');
    expect(formatEventTime(MAX_EPOCH_MS)).toBe('9999-12-31T23:59:59.99+0000');
  });

  test('the epoch itself', () => {
    expect(formatEventTime(0)).toBe('1970-01-01T00:00:00.00+0000');
  });

  test('the exported pattern accepts exactly the format', () => {
    expect(EVENT_TIME_PATTERN.test('2026-11-23T19:07:50.32+0000')).toBe(true);
    expect(EVENT_TIME_PATTERN.test('2026-11-23T19:07:50.320Z')).toBe(false);
    expect(EVENT_TIME_PATTERN.test('2026-11-23T19:07:50.3+0000')).toBe(false);
    expect(EVENT_TIME_PATTERN.test('2026-11-23T19:07:50.32Z')).toBe(false);
  });

  test('property: any instant from 1970 to 9999 is formatted exactly, truncated to hundredths', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_EPOCH_MS }), (ms) => {
        const text = formatEventTime(ms);
        expect(text).toMatch(EXACT_FORMAT);
        expect(text).toMatch(EVENT_TIME_PATTERN);
        expect(text).toBe(referenceTime(ms));
        // Every instant inside the same 10 ms window formats the same way.
        expect(formatEventTime(ms - (ms % 10))).toBe(text);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('severityFor', () => {
  const RANK: Record<Severity, number> = { normal: 0, warning: 1, critical: 2 };
  const SEVERITIES: Severity[] = ['normal', 'warning', 'critical'];

  test.each([401, 403, 503, 507])('status %i makes any action critical', (status) => {
    for (const s of SEVERITIES) expect(severityFor(s, status)).toBe('critical');
  });

  test.each([400, 409, 424, 500, 502, 504, 505])('status %i raises normal to warning and keeps higher ones', (status) => {
    expect(severityFor('normal', status)).toBe('warning');
    expect(severityFor('warning', status)).toBe('warning');
    expect(severityFor('critical', status)).toBe('critical');
  });

  test.each([200, 201, 202, 204, 304, 404, 412, 422, 429, 501, 499])('status %i keeps the action severity', (status) => {
    for (const s of SEVERITIES) expect(severityFor(s, status)).toBe(s);
  });

  test('no status (the call never got one) keeps the action severity', () => {
    for (const s of SEVERITIES) expect(severityFor(s, undefined)).toBe(s);
  });

  test('a failed secret deletion stays critical (status never lowers)', () => {
    expect(severityFor('critical', 404)).toBe('critical');
    expect(severityFor('critical', 400)).toBe('critical');
  });

  test('property: the result is the higher of the action severity and the status severity', () => {
    const byStatus = (status: number | undefined): Severity =>
      status === undefined
        ? 'normal'
        : [401, 403, 503, 507].includes(status)
          ? 'critical'
          : [400, 409, 424, 500, 502, 504, 505].includes(status)
            ? 'warning'
            : 'normal';
    fc.assert(
      fc.property(fc.constantFrom(...SEVERITIES), fc.option(fc.integer({ min: 100, max: 599 }), { nil: undefined }), (action, status) => {
        const result = severityFor(action, status);
        expect(RANK[result]).toBeGreaterThanOrEqual(RANK[action]);
        expect(RANK[result]).toBe(Math.max(RANK[action], RANK[byStatus(status)]));
      }),
      { numRuns: 500 },
    );
  });
});

describe('projectCrn', () => {
  test('the project CRN shape', () => {
    expect(projectCrn('codeengine', 'us-south', 'b0f3c1a2d4e5', '0b4d2c1e-1111-2222-3333-444455556666')).toBe(
      'crn:v1:bluemix:public:codeengine:us-south:a/b0f3c1a2d4e5:0b4d2c1e-1111-2222-3333-444455556666::',
    );
  });

  test('no account: empty scope; no project: empty service instance', () => {
    expect(projectCrn('codeengine', 'eu-de', undefined, 'proj')).toBe('crn:v1:bluemix:public:codeengine:eu-de::proj::');
    expect(projectCrn('codeengine', 'eu-de', 'acc', undefined)).toBe('crn:v1:bluemix:public:codeengine:eu-de:a/acc:::');
    expect(projectCrn('codeengine', 'eu-de', '', '')).toBe('crn:v1:bluemix:public:codeengine:eu-de::::');
  });

  test('hostile ids cannot add or shift CRN segments', () => {
    expect(projectCrn('codeengine', 'us-south', 'acc', 'p:x:y/../z')).toBe('crn:v1:bluemix:public:codeengine:us-south:a/acc:pxy..z::');
    expect(projectCrn('codeengine', 'us-south', 'a/b:c', 'p')).toBe('crn:v1:bluemix:public:codeengine:us-south:a/abc:p::');
    expect(projectCrn('codeengine', 'us-south', 'acc', 'p q\n\u0000é"<>')).toBe('crn:v1:bluemix:public:codeengine:us-south:a/acc:pq::');
    expect(projectCrn('codeengine', 'us-south', ':::', '///')).toBe('crn:v1:bluemix:public:codeengine:us-south::::');
  });

  test('over-long ids are cut to 128 characters', () => {
    const crn = projectCrn('codeengine', 'us-south', 'a'.repeat(300), 'p'.repeat(300));
    expect(crn).toBe(`crn:v1:bluemix:public:codeengine:us-south:a/${'a'.repeat(128)}:${'p'.repeat(128)}::`);
  });

  test('property: always ten fields, safe characters only, in the right places', () => {
    const regions: Region[] = [
      'us-south',
      'us-east',
      'br-sao',
      'ca-tor',
      'eu-de',
      'eu-gb',
      'eu-es',
      'jp-tok',
      'jp-osa',
      'au-syd',
      'in-che',
    ];
    const hostile = fc.option(
      fc.string({ maxLength: 200, unit: fc.constantFrom('a', 'Z', '0', '-', '.', '_', ':', '/', ' ', '\n', '%', 'é', '\u0000') }),
      { nil: undefined },
    );
    fc.assert(
      fc.property(fc.constantFrom(...regions), hostile, hostile, (region, account, project) => {
        const crn = projectCrn('codeengine', region, account, project);
        const fields = crn.split(':');
        expect(fields).toHaveLength(10);
        expect(fields.slice(0, 6)).toEqual(['crn', 'v1', 'bluemix', 'public', 'codeengine', region]);
        expect(fields[6]).toMatch(/^(a\/[A-Za-z0-9._-]{1,128})?$/);
        expect(fields[7]).toMatch(/^[A-Za-z0-9._-]{0,128}$/);
        expect(fields.slice(8)).toEqual(['', '']);
        const safeProject = (project ?? '').replace(/[^A-Za-z0-9._-]/g, '');
        expect(fields[7]).toBe(safeProject.slice(0, 128));
      }),
      { numRuns: 500 },
    );
  });
});

describe('failureMessageOf', () => {
  test('a Code Engine error body: errors[0].message', () => {
    const body: Json = {
      errors: [
        { code: 'resource_not_found', message: 'Resource not found.' },
        { code: 'other', message: 'Second.' },
      ],
      trace: 'codeengine-api-1',
      status_code: 404,
    };
    expect(failureMessageOf(body)).toBe('Resource not found.');
  });

  test('a Code Engine error without a message falls back to its code', () => {
    expect(failureMessageOf({ errors: [{ code: 'resource_not_found' }], status_code: 404 })).toBe('resource_not_found');
    expect(failureMessageOf({ errors: [{ code: 'conflict', message: '   ' }] })).toBe('conflict');
  });

  test('messages are trimmed', () => {
    expect(failureMessageOf({ errors: [{ message: '  padded \n' }] })).toBe('padded');
  });

  test('a Kubernetes Status', () => {
    const status: Json = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'secrets "db-creds" is forbidden: User "IBMid-123" cannot get resource "secrets"',
      reason: 'Forbidden',
      details: { name: 'db-creds', kind: 'secrets' },
      code: 403,
    };
    expect(failureMessageOf(status)).toBe('secrets "db-creds" is forbidden: User "IBMid-123" cannot get resource "secrets"');
  });

  test("IAM's errorMessage", () => {
    expect(
      failureMessageOf({ errorCode: 'BXNIM0415E', errorMessage: 'Provided API key could not be found.', context: { requestId: 'r-1' } }),
    ).toBe('Provided API key could not be found.');
  });

  test('a nested error.message wins over top-level fields', () => {
    expect(failureMessageOf({ error: { code: 'bad', message: 'Nested message' }, message: 'outer' })).toBe('Nested message');
  });

  test('OAuth style: error_description before error', () => {
    expect(failureMessageOf({ error: 'invalid_grant', error_description: 'The refresh token is expired.' })).toBe(
      'The refresh token is expired.',
    );
    expect(failureMessageOf({ error: 'invalid_grant' })).toBe('invalid_grant');
  });

  test('unusable errors entries fall through to the other fields', () => {
    expect(failureMessageOf({ errors: [null], message: 'fallback' })).toBe('fallback');
    expect(failureMessageOf({ errors: [], message: 'fallback' })).toBe('fallback');
    expect(failureMessageOf({ errors: 'not an array', message: 'fallback' })).toBe('fallback');
    expect(failureMessageOf({ errors: [{ message: 42 }], error: { message: '' }, errorMessage: 'iam' })).toBe('iam');
  });

  test.each<[string, Json | undefined]>([
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['a string', 'Internal Server Error'],
    ['a boolean', true],
    ['an array', [{ message: 'in an array' }]],
    ['an empty object', {}],
    ['non-string fields', { message: 42, errorMessage: ['x'], error: 7, error_description: { a: 1 } }],
    ['blank strings', { message: '   ', error: '' }],
    ['errors of garbage', { errors: [[], 'x', 3] }],
  ])('garbage gives no message: %s', (_label, body) => {
    expect(failureMessageOf(body)).toBeUndefined();
  });

  test('property: never throws, and any result is a non-empty trimmed string', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), (value) => {
        const message = failureMessageOf(value as Json);
        if (message !== undefined) {
          expect(message).toBe(message.trim());
          expect(message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('reasonPhrase and bounded', () => {
  test('HTTP reason phrases', () => {
    expect(reasonPhrase(200)).toBe('OK');
    expect(reasonPhrase(404)).toBe('Not Found');
    expect(reasonPhrase(503)).toBe('Service Unavailable');
    expect(reasonPhrase(499)).toBe('Client Closed Request');
    expect(reasonPhrase(799)).toBe('Unknown Status');
  });

  test('bounded keeps short text and cuts long text with an ellipsis', () => {
    expect(bounded('short')).toBe('short');
    expect(bounded('x'.repeat(MAX_REASON_LENGTH))).toBe('x'.repeat(MAX_REASON_LENGTH));
    const cut = bounded('y'.repeat(MAX_REASON_LENGTH + 1));
    expect(cut).toHaveLength(MAX_REASON_LENGTH);
    expect(cut.endsWith('...')).toBe(true);
    expect(bounded('abcdefghij', 8)).toBe('abcde...');
  });

  test('property: bounded never exceeds the limit and keeps a prefix', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), fc.integer({ min: 4, max: 200 }), (text, max) => {
        const out = bounded(text, max);
        expect(out.length).toBeLessThanOrEqual(max);
        if (text.length <= max) expect(out).toBe(text);
        else expect(text.startsWith(out.slice(0, -3))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
