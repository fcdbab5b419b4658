/**
 * Objects embedded in a body as a JSON string, first of all kubectl's last-applied-configuration annotation,
 * which holds the whole applied manifest (a Secret's stringData and data included): redacted by the same rules
 * as the body around them, and still readable by an auditor (what was applied, minus the values).
 * The payloads are what the real kubectl (1.20 and 1.32) sent (test/fixtures/kubectl-payloads.json).
 */
import fc from 'fast-check';
import payloads from '../fixtures/kubectl-payloads.json';
import { parseCapturedBody } from '../../src/audit/body';
import { loadRedactor, type Json, type JsonObject } from '../../src/audit/redact';
import { BodyCapture } from '../../src/proxy/body-capture';

const redactor = loadRedactor();
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
const R = redactor.replacement;

/** Every form a canary can take on disk: as sent, and base64 (Secret data). */
function forms(canary: string): string[] {
  return [canary, Buffer.from(canary).toString('base64'), Buffer.from(canary).toString('base64').replace(/=+$/, '')];
}

function leaks(text: string, canaries: readonly string[]): string[] {
  return canaries.flatMap(forms).filter((f) => text.includes(f));
}

function annotationsOf(body: Json): JsonObject | undefined {
  const meta = (body as JsonObject).metadata as JsonObject | undefined;
  return meta?.annotations as JsonObject | undefined;
}

const jsonRequests = payloads.requests.filter((r) => r.contentType !== 'application/vnd.kubernetes.protobuf');

describe('the real kubectl payloads', () => {
  test('the fixture holds the secrets it claims to (the capture is not vacuous)', () => {
    const all = payloads.requests.map((r) => Buffer.from(r.body, 'base64').toString('latin1')).join('\n');
    expect(payloads.canaries.filter((c) => leaks(all, [c]).length === 0)).toEqual([]);
    expect(jsonRequests.filter((r) => Buffer.from(r.body, 'base64').toString().includes(LAST_APPLIED)).length).toBe(8);
  });

  test.each(jsonRequests.map((r) => [`kubectl ${r.kubectl}: ${r.command}`, r] as const))('%s: no secret survives', (_name, r) => {
    const secretBearing = r.path.includes('/secrets');
    const capture = new BodyCapture(1 << 20);
    capture.add(Buffer.from(r.body, 'base64'));
    const parsed = parseCapturedBody(capture, r.contentType ?? undefined);
    if (parsed.kind !== 'json') throw new Error(`not parsed as JSON: ${JSON.stringify(parsed)}`);
    const redacted = redactor.redactBody(parsed.value, secretBearing);
    expect(leaks(JSON.stringify(redacted), payloads.canaries)).toEqual([]);

    // The auditor still reads what was applied: the annotation stays a JSON manifest, its values redacted.
    const annotation = annotationsOf(redacted)?.[LAST_APPLIED];
    if (r.command.startsWith('apply')) {
      expect(typeof annotation).toBe('string');
      const applied = JSON.parse(annotation as string) as JsonObject;
      expect(applied.kind).toBe(secretBearing ? 'Secret' : 'ConfigMap');
      expect((applied.metadata as JsonObject).name).toBe(secretBearing ? 'app-secret' : 'app-config');
      if (secretBearing) {
        expect(applied.stringData).toEqual({ token: R });
        expect(applied.data).toEqual({ password: R });
      } else {
        const data = applied.data as JsonObject;
        expect(data.plain).toBe('kept');
        expect(data.password).toBe(R);
        // A config file held in a config map, itself JSON: its credential-named key is redacted too.
        expect(JSON.parse(data['app.json'] as string)).toMatchObject({ apiKey: R });
      }
    }
  });
});

describe('objects embedded as strings', () => {
  test('an annotation that embeds a Secret is redacted with the Secret rules, whitespace of untouched strings kept', () => {
    const manifest = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { k: 'c2VjcmV0' } });
    const body = { metadata: { annotations: { 'example.com/snapshot': manifest, 'example.com/pretty': '{\n  "level": "debug"\n}' } } };
    const out = redactor.redactBody(body, false) as JsonObject;
    const annotations = annotationsOf(out) as JsonObject;
    expect(JSON.parse(annotations['example.com/snapshot'] as string)).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's' },
      data: { k: R },
    });
    expect(annotations['example.com/pretty']).toBe('{\n  "level": "debug"\n}');
  });

  test('a last-applied annotation that is not JSON is replaced whole', () => {
    const body = { kind: 'ConfigMap', metadata: { annotations: { [LAST_APPLIED]: '{"data": {"password": "x"' } } };
    expect(annotationsOf(redactor.redactBody(body, false))?.[LAST_APPLIED]).toBe(R);
  });

  test('embedding within embedding, and an embedded JSON Patch', () => {
    const inner = JSON.stringify({ kind: 'Secret', stringData: { token: 'deep-secret-1' } });
    const outer = JSON.stringify({ kind: 'ConfigMap', metadata: { annotations: { [LAST_APPLIED]: inner } } });
    const patch = JSON.stringify([{ op: 'add', path: '/data/password', value: 'deep-secret-2' }]);
    const out = JSON.stringify(redactor.redactBody({ spec: { snapshot: outer, patch } }, true));
    expect(out).not.toContain('deep-secret-1');
    expect(out).not.toContain('deep-secret-2');
  });

  test('nesting deeper than the rules follow is replaced whole, never quoted', () => {
    let value = JSON.stringify({ password: 'deepest-secret' });
    for (let i = 0; i < 12; i++) value = JSON.stringify({ wrapped: value });
    const out = JSON.stringify(redactor.redactBody({ a: value }, false));
    expect(out).not.toContain('deepest-secret');
  });
});

const CANARY = 'EMBEDCANARY';
let counter = 0;
const canary = (): string => `${CANARY}${(counter++).toString(36)}x`;

/** A manifest as kubectl writes one, with secrets in every place the rules know, some at random depth. */
const manifest: fc.Arbitrary<JsonObject> = fc
  .record({
    kind: fc.constantFrom('Secret', 'ConfigMap'),
    name: fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
    keys: fc.uniqueArray(fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9._-]{0,12}$/), { minLength: 1, maxLength: 4 }),
    sensitive: fc.constantFrom('password', 'token', 'apikey', 'client_secret', 'private_key'),
    extra: fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.string({ maxLength: 12 }), { maxKeys: 3 }),
  })
  .map(({ kind, name, keys, sensitive, extra }): JsonObject => {
    const meta: JsonObject = { name, namespace: 'ns1', annotations: { ...extra } };
    if (kind === 'Secret') {
      return {
        apiVersion: 'v1',
        kind,
        metadata: meta,
        type: 'Opaque',
        stringData: Object.fromEntries(keys.map((k) => [k, canary()])),
        data: Object.fromEntries(keys.map((k) => [k, Buffer.from(canary()).toString('base64')])),
      };
    }
    return {
      apiVersion: 'v1',
      kind,
      metadata: meta,
      data: { [sensitive]: canary(), 'settings.json': JSON.stringify({ [sensitive]: canary(), level: 'debug' }) },
    };
  });

/** kubectl apply: the manifest, with itself as its last-applied annotation, maybe nested a few times more. */
const applied: fc.Arbitrary<{ body: JsonObject; kind: string }> = fc
  .tuple(manifest, fc.integer({ min: 0, max: 3 }), fc.boolean())
  .map(([m, depth, asPatch]) => {
    let annotation = `${JSON.stringify(m)}\n`;
    for (let i = 0; i < depth; i++)
      annotation = JSON.stringify({ kind: m.kind, metadata: { annotations: { [LAST_APPLIED]: annotation } } });
    const meta = {
      ...(m.metadata as JsonObject),
      annotations: { ...((m.metadata as JsonObject).annotations as JsonObject), [LAST_APPLIED]: annotation },
    };
    // A strategic merge patch carries no kind: only the route says it is a Secret.
    const body = asPatch
      ? { metadata: meta, ...(m.kind === 'Secret' ? { stringData: m.stringData } : { data: m.data }) }
      : { ...m, metadata: meta };
    return { body: JSON.parse(JSON.stringify(body)) as JsonObject, kind: m.kind as string };
  });

test('property: a secret anywhere in an applied manifest never survives, its name always does', () => {
  fc.assert(
    fc.property(applied, ({ body, kind }) => {
      const name = (body.metadata as JsonObject).name as string;
      const out = JSON.stringify(redactor.redactBody(body, kind === 'Secret'));
      const decoded = out.match(/[A-Za-z0-9+/]{12,}={0,2}/g)?.map((b) => Buffer.from(b, 'base64').toString('latin1')) ?? [];
      expect(out).not.toContain(CANARY);
      expect(decoded.some((d) => d.includes(CANARY))).toBe(false);
      expect(out).toContain(name);
    }),
    { numRuns: 2000 },
  );
});

test('a token in an embedded object that redaction inside cannot reach (a key) still replaces the whole string', () => {
  const body = { metadata: { annotations: { snapshot: JSON.stringify({ 'Bearer abcdefgh12345678': 1, level: 'x' }) } } };
  expect(annotationsOf(redactor.redactBody(body, false))?.snapshot).toBe(R);
});
