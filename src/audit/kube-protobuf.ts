/**
 * The identity of a Kubernetes object sent or returned as protobuf (`application/vnd.kubernetes.protobuf`, what
 * client-go and kubectl 1.32 use for built-in kinds): its kind, name and namespace, and nothing else. The body
 * is never quoted in an event, since protobuf cannot be redacted field by field here; this only lets the event
 * name the object it is about.
 *
 * Wire format (k8s.io/apimachinery runtime/serializer/protobuf): the four bytes "k8s\0", then a
 * `runtime.Unknown` message { 1: TypeMeta { 1: apiVersion, 2: kind }, 2: raw (the object's own message),
 * 3: contentEncoding, 4: contentType }. Every top-level object message has its `ObjectMeta` as field 1, whose
 * fields 1, 2 and 3 are name, generateName and namespace. Lists and Status carry a ListMeta there instead.
 *
 * The decode is bounded: it never reads outside the buffer, never throws, and looks at a fixed number of fields
 * per message, so its work is linear in those fields whatever the bytes.
 */

const MAGIC = [0x6b, 0x38, 0x73, 0x00] as const;
/** Fields looked at per message before giving up (real envelopes have 4; ObjectMeta's first 3 come first). */
const MAX_FIELDS = 32;
/** Longest value read: Kubernetes names are at most 253 characters. */
const MAX_STRING_BYTES = 253;
const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;

export interface KubeObjectIdentity {
  apiVersion?: string;
  kind?: string;
  name?: string;
  generateName?: string;
  namespace?: string;
}

const PROTOBUF_TYPE = /^application\/vnd\.kubernetes\.protobuf\s*(;|$)/i;

/** True for Kubernetes' protobuf media type (not its watch stream, which frames many objects). */
export function isKubeProtobuf(contentType: string | undefined): boolean {
  return contentType !== undefined && PROTOBUF_TYPE.test(contentType) && !/;\s*stream=/i.test(contentType);
}

/** A length-delimited field found in a message: its number and where its bytes are. */
interface Field {
  number: number;
  start: number;
  end: number;
  /** The buffer ended inside it (a capture cut short): its own fields can still be read, never its text. */
  clipped: boolean;
}

/** Reads a base-128 varint at `pos` below `end`: [value, next position], or undefined when malformed. */
function varint(bytes: Uint8Array, pos: number, end: number): [number, number] | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) return undefined;
    const b = bytes[pos++] as number;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return value > Number.MAX_SAFE_INTEGER ? undefined : [value, pos];
    scale *= 128;
  }
  return undefined;
}

/**
 * The length-delimited fields among the first MAX_FIELDS fields of the message in [start, end). Stops at the
 * first malformed byte, keeping what was found before it; a field the buffer ends inside is kept as clipped
 * (a body larger than the capture still names its object: the name comes first).
 */
function lengthFields(bytes: Uint8Array, start: number, end: number, wanted: ReadonlySet<number>): Field[] {
  const found: Field[] = [];
  let pos = start;
  for (let n = 0; n < MAX_FIELDS && pos < end; n++) {
    const tag = varint(bytes, pos, end);
    if (!tag) break;
    pos = tag[1];
    const number = Math.floor(tag[0] / 8);
    const wire = tag[0] % 8;
    if (number === 0) break;
    if (wire === WIRE_VARINT) {
      const v = varint(bytes, pos, end);
      if (!v) break;
      pos = v[1];
    } else if (wire === WIRE_FIXED64) {
      pos += 8;
    } else if (wire === WIRE_FIXED32) {
      pos += 4;
    } else if (wire === WIRE_LENGTH) {
      const length = varint(bytes, pos, end);
      if (!length) break;
      const fieldStart = length[1];
      if (length[0] > end - fieldStart) {
        if (wanted.has(number)) found.push({ number, start: fieldStart, end, clipped: true });
        break;
      }
      pos = fieldStart + length[0];
      if (wanted.has(number)) found.push({ number, start: fieldStart, end: pos, clipped: false });
    } else {
      // Groups (3, 4) and reserved wire types: nothing Kubernetes writes.
      break;
    }
  }
  return found;
}

/** A short printable ASCII string, or undefined: anything else is not a Kubernetes name and is not quoted. */
function text(bytes: Uint8Array, field: Field | undefined): string | undefined {
  if (!field || field.clipped || field.end === field.start || field.end - field.start > MAX_STRING_BYTES) return undefined;
  let out = '';
  for (let i = field.start; i < field.end; i++) {
    const b = bytes[i] as number;
    if (b < 0x20 || b > 0x7e) return undefined;
    out += String.fromCharCode(b);
  }
  return out;
}

const TYPE_META = new Set([1, 2]);
const UNKNOWN_FIELDS = new Set([1, 2, 3]);
const OBJECT_FIELDS = new Set([1]);
const META_FIELDS = new Set([1, 2, 3]);

function first(fields: readonly Field[], number: number): Field | undefined {
  return fields.find((f) => f.number === number);
}

/** Only what was read is set: an identity has no undefined members. */
function set(identity: KubeObjectIdentity, key: keyof KubeObjectIdentity, value: string | undefined): void {
  if (value !== undefined) identity[key] = value;
}

/** Kinds whose field 1 is not an ObjectMeta. */
function hasObjectMeta(kind: string | undefined): boolean {
  return kind !== undefined && !kind.endsWith('List') && kind !== 'Status' && kind !== 'WatchEvent';
}

/**
 * Kind, name and namespace of the object in a protobuf body (the first bytes of it are enough), or undefined
 * when it is not Kubernetes' protobuf envelope.
 */
export function readKubeProtobufIdentity(bytes: Uint8Array): KubeObjectIdentity | undefined {
  if (bytes.length < MAGIC.length || MAGIC.some((b, i) => bytes[i] !== b)) return undefined;
  const unknown = lengthFields(bytes, MAGIC.length, bytes.length, UNKNOWN_FIELDS);
  const identity: KubeObjectIdentity = {};
  const typeMeta = first(unknown, 1);
  if (typeMeta) {
    const fields = lengthFields(bytes, typeMeta.start, typeMeta.end, TYPE_META);
    set(identity, 'apiVersion', text(bytes, first(fields, 1)));
    set(identity, 'kind', text(bytes, first(fields, 2)));
  }
  const raw = first(unknown, 2);
  const encoding = first(unknown, 3);
  // A compressed raw object (contentEncoding set) is not read.
  if (!raw || (encoding && encoding.end > encoding.start) || !hasObjectMeta(identity.kind)) return identity;
  const meta = first(lengthFields(bytes, raw.start, raw.end, OBJECT_FIELDS), 1);
  if (!meta) return identity;
  const fields = lengthFields(bytes, meta.start, meta.end, META_FIELDS);
  set(identity, 'name', text(bytes, first(fields, 1)));
  set(identity, 'generateName', text(bytes, first(fields, 2)));
  set(identity, 'namespace', text(bytes, first(fields, 3)));
  return identity;
}
