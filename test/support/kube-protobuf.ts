/**
 * Kubernetes protobuf for the Kubernetes API stand-in: the "k8s\0" + runtime.Unknown envelope around ConfigMap,
 * Secret, their lists, Namespace and Status, with the field numbers of k8s.io/api and k8s.io/apimachinery's
 * generated.proto. Written independently of the gateway's decoder (src/audit/kube-protobuf.ts), so each checks
 * the other; enough of each kind for kubectl to create, read, update and delete them.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

function varint(value: number): Buffer {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

class Writer {
  private readonly parts: Buffer[] = [];

  bytes(field: number, value: Buffer): this {
    this.parts.push(varint(field * 8 + 2), varint(value.length), value);
    return this;
  }

  string(field: number, value: Json | undefined): this {
    return typeof value === 'string' ? this.bytes(field, Buffer.from(value, 'utf8')) : this;
  }

  int(field: number, value: Json | undefined): this {
    if (typeof value === 'number' && Number.isInteger(value) && value >= 0) this.parts.push(varint(field * 8), varint(value));
    return this;
  }

  bool(field: number, value: Json | undefined): this {
    if (typeof value === 'boolean') this.parts.push(varint(field * 8), varint(value ? 1 : 0));
    return this;
  }

  message(field: number, value: Buffer | undefined): this {
    return value ? this.bytes(field, value) : this;
  }

  /** map<string, string> (or bytes, given as base64 when `base64`) */
  map(field: number, value: Json | undefined, base64 = false): this {
    if (!isObject(value)) return this;
    for (const [key, v] of Object.entries(value)) {
      if (typeof v !== 'string') continue;
      const entry = new Writer().string(1, key).bytes(2, base64 ? Buffer.from(v, 'base64') : Buffer.from(v, 'utf8'));
      this.bytes(field, entry.done());
    }
    return this;
  }

  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function time(value: Json | undefined): Buffer | undefined {
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Writer().int(1, Math.floor(ms / 1000)).done();
}

function objectMeta(meta: Json | undefined): Buffer {
  const m = isObject(meta) ? meta : {};
  return new Writer()
    .string(1, m.name)
    .string(2, m.generateName)
    .string(3, m.namespace)
    .string(5, m.uid)
    .string(6, m.resourceVersion)
    .message(8, time(m.creationTimestamp))
    .map(11, m.labels)
    .map(12, m.annotations)
    .done();
}

function listMeta(meta: Json | undefined): Buffer {
  const m = isObject(meta) ? meta : {};
  return new Writer().string(2, m.resourceVersion).string(3, m.continue).done();
}

function configMap(o: JsonObject): Buffer {
  return new Writer().message(1, objectMeta(o.metadata)).map(2, o.data).map(3, o.binaryData, true).bool(4, o.immutable).done();
}

function secret(o: JsonObject): Buffer {
  return new Writer()
    .message(1, objectMeta(o.metadata))
    .map(2, o.data, true)
    .string(3, o.type)
    .map(4, o.stringData)
    .bool(5, o.immutable)
    .done();
}

function namespace(o: JsonObject): Buffer {
  const status = isObject(o.status) ? o.status : {};
  return new Writer().message(1, objectMeta(o.metadata)).message(3, new Writer().string(1, status.phase).done()).done();
}

function status(o: JsonObject): Buffer {
  const d = isObject(o.details) ? o.details : undefined;
  const details = d ? new Writer().string(1, d.name).string(2, d.group).string(3, d.kind).string(6, d.uid).done() : undefined;
  return new Writer()
    .message(1, listMeta(o.metadata))
    .string(2, o.status)
    .string(3, o.message)
    .string(4, o.reason)
    .message(5, details)
    .int(6, o.code)
    .done();
}

function list(o: JsonObject, item: (o: JsonObject) => Buffer): Buffer {
  const w = new Writer().message(1, listMeta(o.metadata));
  for (const i of Array.isArray(o.items) ? o.items : []) if (isObject(i)) w.bytes(2, item(i));
  return w.done();
}

const ENCODERS: Readonly<Record<string, (o: JsonObject) => Buffer>> = {
  ConfigMap: configMap,
  Secret: secret,
  Namespace: namespace,
  Status: status,
  ConfigMapList: (o) => list(o, configMap),
  SecretList: (o) => list(o, secret),
};

/** True when this object's kind can be sent as protobuf. */
export function canEncode(object: JsonObject): boolean {
  return typeof object.kind === 'string' && Object.hasOwn(ENCODERS, object.kind);
}

/** The object in Kubernetes' protobuf envelope. */
export function encodeKubeProtobuf(object: JsonObject): Buffer {
  const kind = typeof object.kind === 'string' ? object.kind : '';
  const encode = ENCODERS[kind];
  if (!encode) throw new Error(`no protobuf encoding for kind ${kind}`);
  const typeMeta = new Writer()
    .string(1, object.apiVersion ?? 'v1')
    .string(2, kind)
    .done();
  const unknown = new Writer().message(1, typeMeta).bytes(2, encode(object)).string(3, '').string(4, '').done();
  return Buffer.concat([MAGIC, unknown]);
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding (strict: a malformed body is an error, as the API server would answer)

interface RawField {
  number: number;
  wire: number;
  value: number | Buffer;
}

function fields(buf: Buffer): RawField[] {
  const out: RawField[] = [];
  let pos = 0;
  const readVarint = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++] as number;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
  };
  while (pos < buf.length) {
    const tag = readVarint();
    const number = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === 0) out.push({ number, wire, value: readVarint() });
    else if (wire === 2) {
      const length = readVarint();
      if (pos + length > buf.length) throw new Error('truncated field');
      out.push({ number, wire, value: buf.subarray(pos, pos + length) });
      pos += length;
    } else if (wire === 1 || wire === 5) pos += wire === 1 ? 8 : 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

function bytesOf(f: RawField): Buffer {
  if (!Buffer.isBuffer(f.value)) throw new Error(`field ${f.number} is not length-delimited`);
  return f.value;
}

function strings(buf: Buffer, names: Record<number, string>): JsonObject {
  const out: JsonObject = {};
  for (const f of fields(buf)) {
    const key = names[f.number];
    if (key && Buffer.isBuffer(f.value)) out[key] = f.value.toString('utf8');
  }
  return out;
}

function mapEntry(buf: Buffer, base64: boolean): [string, string] {
  let key = '';
  let value = '';
  for (const f of fields(buf)) {
    if (f.number === 1) key = bytesOf(f).toString('utf8');
    if (f.number === 2) value = base64 ? bytesOf(f).toString('base64') : bytesOf(f).toString('utf8');
  }
  return [key, value];
}

function decodeMeta(buf: Buffer): JsonObject {
  const meta: JsonObject = strings(buf, { 1: 'name', 2: 'generateName', 3: 'namespace', 5: 'uid', 6: 'resourceVersion' });
  for (const f of fields(buf)) {
    if (f.number === 11 || f.number === 12) {
      const key = f.number === 11 ? 'labels' : 'annotations';
      const map = isObject(meta[key]) ? (meta[key] as JsonObject) : {};
      const [k, v] = mapEntry(bytesOf(f), false);
      map[k] = v;
      meta[key] = map;
    }
  }
  for (const key of ['generateName', 'namespace', 'uid', 'resourceVersion']) if (meta[key] === '') delete meta[key];
  return meta;
}

/** The JSON form of a ConfigMap or Secret sent as protobuf; throws on anything malformed or of another kind. */
export function decodeKubeProtobuf(body: Buffer): JsonObject {
  if (body.length < 4 || !body.subarray(0, 4).equals(MAGIC)) throw new Error('not a Kubernetes protobuf body (no k8s\\0 prefix)');
  let typeMeta: JsonObject = {};
  let raw: Buffer | undefined;
  for (const f of fields(body.subarray(4))) {
    if (f.number === 1) typeMeta = strings(bytesOf(f), { 1: 'apiVersion', 2: 'kind' });
    if (f.number === 2) raw = bytesOf(f);
  }
  const kind = typeMeta.kind;
  if (!raw || (kind !== 'ConfigMap' && kind !== 'Secret')) throw new Error(`no protobuf decoding for kind ${String(kind)}`);
  const out: JsonObject = { apiVersion: typeMeta.apiVersion ?? 'v1', kind, metadata: {} };
  for (const f of fields(raw)) {
    if (f.number === 1) out.metadata = decodeMeta(bytesOf(f));
    else if (f.number === 2 || (kind === 'ConfigMap' && f.number === 3) || (kind === 'Secret' && f.number === 4)) {
      const key = f.number === 2 ? 'data' : f.number === 3 ? 'binaryData' : 'stringData';
      const base64 = (kind === 'Secret' && f.number === 2) || (kind === 'ConfigMap' && f.number === 3);
      const map = isObject(out[key]) ? (out[key] as JsonObject) : {};
      const [k, v] = mapEntry(bytesOf(f), base64);
      map[k] = v;
      out[key] = map;
    } else if (kind === 'Secret' && f.number === 3) out.type = bytesOf(f).toString('utf8');
  }
  return out;
}
