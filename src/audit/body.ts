import type { BodyCapture } from '../proxy/body-capture';
import { isKubeProtobuf, readKubeProtobufIdentity } from './kube-protobuf';
import type { Json } from './redact';

/**
 * A captured body as the event sees it. An omitted body may still say which object it is about (`names`:
 * `{apiVersion, kind, metadata: {name, generateName, namespace}}` read from a Kubernetes protobuf envelope),
 * for the catalog's name sources only: it is never recorded.
 */
export type ParsedBody = { kind: 'empty' } | { kind: 'json'; value: Json } | { kind: 'omitted'; reason: string; names?: Json };

const JSON_TYPE =
  /^application\/([a-z0-9.+-]*\+)?json|^application\/(merge-patch|json-patch|strategic-merge-patch|apply-patch)\+(json|yaml)/i;

function kib(bytes: number): string {
  return bytes >= 1024 ? `${Math.round(bytes / 1024)} KiB` : `${bytes} bytes`;
}

/**
 * Parse a captured body for the event. Only a body that was captured whole and is JSON is ever recorded; a
 * truncated or non-JSON body is described (type and size), never quoted, since its contents cannot be redacted.
 */
export function parseCapturedBody(capture: BodyCapture | undefined, contentType: string | undefined): ParsedBody {
  if (!capture || capture.total === 0) return { kind: 'empty' };
  if (isKubeProtobuf(contentType)) return protobufBody(capture);
  if (!capture.complete)
    return { kind: 'omitted', reason: `body of ${kib(capture.total)} is larger than the ${kib(capture.limit)} capture limit` };
  const bytes = capture.bytes();
  const looksJson = contentType ? JSON_TYPE.test(contentType) : bytes[0] === 0x7b || bytes[0] === 0x5b;
  if (!looksJson)
    return { kind: 'omitted', reason: `${(contentType ?? 'untyped').split(';')[0]} body of ${kib(capture.total)} is not JSON` };
  try {
    return { kind: 'json', value: JSON.parse(bytes.toString('utf8')) as Json };
  } catch {
    return { kind: 'omitted', reason: `body of ${kib(capture.total)} is not valid JSON` };
  }
}

/** A Kubernetes protobuf body: never quoted; its kind, name and namespace are read for the event's target. */
function protobufBody(capture: BodyCapture): ParsedBody {
  const reason = `application/vnd.kubernetes.protobuf body of ${kib(capture.total)} is not JSON`;
  // Its first bytes name the object: a body larger than the capture still does.
  const id = readKubeProtobufIdentity(capture.bytes());
  if (!id) return { kind: 'omitted', reason };
  const metadata: Record<string, Json> = {};
  if (id.name !== undefined) metadata.name = id.name;
  if (id.generateName !== undefined) metadata.generateName = id.generateName;
  if (id.namespace !== undefined) metadata.namespace = id.namespace;
  const names: Record<string, Json> = { metadata };
  if (id.apiVersion !== undefined) names.apiVersion = id.apiVersion;
  if (id.kind !== undefined) names.kind = id.kind;
  return { kind: 'omitted', reason: `${reason}; only its kind, name and namespace were read`, names };
}

/** RFC 6901 JSON pointer lookup of a string (or number) value. */
export function pointerString(value: Json | undefined, pointer: string): string | undefined {
  let node: Json | undefined = value;
  for (const token of pointer.split('/').slice(1)) {
    if (node === null || typeof node !== 'object') return undefined;
    const key = token.replace(/~1/g, '/').replace(/~0/g, '~');
    node = Array.isArray(node) ? node[Number(key)] : node[key];
  }
  if (typeof node === 'string' && node !== '') return node;
  if (typeof node === 'number') return String(node);
  return undefined;
}
