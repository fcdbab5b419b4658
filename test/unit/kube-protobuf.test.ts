/**
 * The bounded read of kind, name and namespace from Kubernetes protobuf bodies (src/audit/kube-protobuf.ts):
 * the bodies the real kubectl 1.32 sent, objects of every shape the stand-in encodes, and arbitrary bytes. It
 * never throws, never reads outside the buffer, looks at a bounded number of bytes whatever the input, and
 * returns a name only when it is the object's own.
 */
import fc from 'fast-check';
import payloads from '../fixtures/kubectl-payloads.json';
import { parseCapturedBody } from '../../src/audit/body';
import { isKubeProtobuf, readKubeProtobufIdentity, type KubeObjectIdentity } from '../../src/audit/kube-protobuf';
import { BodyCapture } from '../../src/proxy/body-capture';
import { encodeKubeProtobuf } from '../support/kube-protobuf';

const realProtobuf = payloads.requests.filter((r) => r.contentType === 'application/vnd.kubernetes.protobuf');

/** Reads through a proxy that records every index the decoder touches. */
function traced(bytes: Uint8Array): { result: KubeObjectIdentity | undefined; reads: number; outside: number[] } {
  let reads = 0;
  const outside: number[] = [];
  const proxy = new Proxy(bytes, {
    get(target, key) {
      if (typeof key === 'string' && /^\d+$/.test(key)) {
        reads++;
        const i = Number(key);
        if (i >= target.length) outside.push(i);
        return target[i];
      }
      const value = Reflect.get(target, key) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { result: readKubeProtobufIdentity(proxy), reads, outside };
}

/** Generous bound on the bytes looked at: 4 messages of 32 fields, varints of 10 bytes, 5 strings of 253. */
const MAX_READS = 4 + 4 * 32 * 3 * 10 + 5 * 253;

describe('what the real kubectl 1.32 sent', () => {
  test('the fixture has the two protobuf creates', () => {
    expect(realProtobuf.map((r) => r.command)).toEqual(['create configmap --from-literal', 'create secret generic --from-literal']);
  });

  test.each(realProtobuf.map((r) => [r.command, r] as const))('%s: kind and name read, nothing else', (_c, r) => {
    const bytes = Buffer.from(r.body, 'base64');
    const expected = r.command.includes('configmap') ? { kind: 'ConfigMap', name: 'cm1' } : { kind: 'Secret', name: 'gen1' };
    expect(readKubeProtobufIdentity(bytes)).toEqual({ apiVersion: 'v1', ...expected });
    const capture = new BodyCapture(1 << 16);
    capture.add(bytes);
    const parsed = parseCapturedBody(capture, r.contentType ?? undefined);
    expect(parsed).toEqual({
      kind: 'omitted',
      reason: `application/vnd.kubernetes.protobuf body of ${bytes.length} bytes is not JSON; only its kind, name and namespace were read`,
      names: { apiVersion: 'v1', kind: expected.kind, metadata: { name: expected.name } },
    });
    for (const c of payloads.canaries) expect(JSON.stringify(parsed)).not.toContain(c);
  });

  test.each(realProtobuf.map((r) => [r.command, r] as const))('%s: every truncation names the object or nothing', (_c, r) => {
    const bytes = Buffer.from(r.body, 'base64');
    const name = readKubeProtobufIdentity(bytes)?.name;
    for (let n = 0; n <= bytes.length; n++) {
      const { result, outside } = traced(bytes.subarray(0, n));
      expect(outside).toEqual([]);
      expect([undefined, name]).toContain(result?.name);
    }
  });
});

describe('objects the stand-in encodes', () => {
  test('namespace, generateName and name of a ConfigMap and a Secret', () => {
    const meta = { name: 'n1', generateName: 'gen-', namespace: 'ns-a', uid: 'u', resourceVersion: '7', labels: { a: 'b' } };
    for (const kind of ['ConfigMap', 'Secret']) {
      expect(readKubeProtobufIdentity(encodeKubeProtobuf({ apiVersion: 'v1', kind, metadata: meta, data: { k: 'dmFsdWU=' } }))).toEqual({
        apiVersion: 'v1',
        kind,
        name: 'n1',
        generateName: 'gen-',
        namespace: 'ns-a',
      });
    }
  });

  test('lists and Status carry no object name (their field 1 is a ListMeta)', () => {
    const list = encodeKubeProtobuf({
      apiVersion: 'v1',
      kind: 'ConfigMapList',
      metadata: { resourceVersion: '9' },
      items: [{ metadata: { name: 'x' } }],
    });
    expect(readKubeProtobufIdentity(list)).toEqual({ apiVersion: 'v1', kind: 'ConfigMapList' });
    const status = encodeKubeProtobuf({
      apiVersion: 'v1',
      kind: 'Status',
      metadata: {},
      status: 'Failure',
      message: 'secrets "s" not found',
      code: 404,
    });
    expect(readKubeProtobufIdentity(status)).toEqual({ apiVersion: 'v1', kind: 'Status' });
  });

  test('not the envelope: JSON, other media types, the watch stream', () => {
    expect(readKubeProtobufIdentity(Buffer.from('{"kind":"ConfigMap"}'))).toBeUndefined();
    expect(readKubeProtobufIdentity(Buffer.alloc(0))).toBeUndefined();
    expect(isKubeProtobuf('application/vnd.kubernetes.protobuf')).toBe(true);
    expect(isKubeProtobuf('application/vnd.kubernetes.protobuf; charset=binary')).toBe(true);
    expect(isKubeProtobuf('application/vnd.kubernetes.protobuf;stream=watch')).toBe(false);
    expect(isKubeProtobuf('application/json')).toBe(false);
    expect(isKubeProtobuf(undefined)).toBe(false);
  });

  test('a name that is not printable ASCII, or too long, is not quoted', () => {
    for (const name of ['na\u0000me', 'ünïcode', 'x'.repeat(254)]) {
      expect(
        readKubeProtobufIdentity(encodeKubeProtobuf({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name } }))?.name,
      ).toBeUndefined();
    }
  });
});

describe('property', () => {
  const MAGIC = [0x6b, 0x38, 0x73, 0x00];
  const arbitraryBytes = fc.oneof(
    fc.uint8Array({ maxLength: 512 }),
    fc.uint8Array({ maxLength: 512 }).map((b) => Uint8Array.from([...MAGIC, ...b])),
    // Many small fields, far more than the decoder looks at.
    fc
      .integer({ min: 1, max: 20000 })
      .map((n) => Uint8Array.from([...MAGIC, ...Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 0x28 : 0x01))])),
  );

  test('arbitrary bytes: never throws, never reads outside, bounded reads, names are short printable ASCII', () => {
    fc.assert(
      fc.property(arbitraryBytes, (bytes) => {
        const { result, reads, outside } = traced(bytes);
        expect(outside).toEqual([]);
        expect(reads).toBeLessThanOrEqual(MAX_READS);
        for (const value of Object.values(result ?? {})) expect(value).toMatch(/^[\x20-\x7e]{1,253}$/);
      }),
      { numRuns: 3000 },
    );
  });

  test('real payloads with bytes changed: never throws, never reads outside, bounded reads', () => {
    const bodies = realProtobuf.map((r) => Buffer.from(r.body, 'base64'));
    fc.assert(
      fc.property(
        fc.constantFrom(...bodies),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        (body, changes) => {
          const bytes = Uint8Array.from(body);
          for (const [at, value] of changes) bytes[at % bytes.length] = value;
          const { result, reads, outside } = traced(bytes);
          expect(outside).toEqual([]);
          expect(reads).toBeLessThanOrEqual(MAX_READS);
          if (result?.name !== undefined) expect(result.name).toMatch(/^[\x20-\x7e]{1,253}$/);
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('encoded objects of any printable name: that name, read back', () => {
    const k8sName = fc.stringMatching(/^[a-z0-9]([a-z0-9.-]{0,60}[a-z0-9])?$/);
    fc.assert(
      fc.property(
        k8sName,
        k8sName,
        fc.constantFrom('ConfigMap', 'Secret'),
        fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 40 })),
        (name, ns, kind, data) => {
          const bytes = encodeKubeProtobuf({
            apiVersion: 'v1',
            kind,
            metadata: { name, namespace: ns, annotations: data },
            data: kind === 'ConfigMap' ? data : {},
          });
          expect(readKubeProtobufIdentity(bytes)).toEqual({ apiVersion: 'v1', kind, name, namespace: ns });
        },
      ),
      { numRuns: 1000 },
    );
  });
});

test('a body larger than the capture still names its object', () => {
  const big = encodeKubeProtobuf({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'big-one', namespace: 'ns1' },
    data: { blob: 'x'.repeat(200_000) },
  });
  const capture = new BodyCapture(1024);
  capture.add(big);
  expect(capture.complete).toBe(false);
  expect(parseCapturedBody(capture, 'application/vnd.kubernetes.protobuf')).toEqual({
    kind: 'omitted',
    reason: `application/vnd.kubernetes.protobuf body of ${Math.round(big.length / 1024)} KiB is not JSON; only its kind, name and namespace were read`,
    names: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'big-one', namespace: 'ns1' } },
  });
});
