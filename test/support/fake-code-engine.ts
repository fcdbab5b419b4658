/**
 * A fake IBM Cloud Code Engine for end-to-end tests of the gateway.
 *
 * One plain node:http server plays both hosts the gateway talks to:
 *  - the management API (`/v2/...` REST and the v1 kubeconfig endpoints under `/api/v1/project|namespaces/{id}/config`);
 *  - the Kubernetes API (`/api/v1/namespaces/...`, `/apis/{group}/{version}/namespaces/...`, discovery).
 * State lives in memory. Request headers `x-fake-*` inject failures (see `applyHooks`), and the `/v2/_upload`,
 * `/v2/_download` and `/v2/_echo` endpoints exist only for streaming and header-forwarding tests.
 */
import * as http from 'node:http';
import { canEncode, decodeKubeProtobuf, encodeKubeProtobuf } from './kube-protobuf';
import { closeNow, listenOnLoopback } from './listen';
import { createHash, randomBytes, randomUUID } from 'node:crypto';

export interface RecordedRequest {
  method: string;
  url: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  /** The first MiB of the request body (filled in once the body has been read). */
  body: Buffer;
  /** Size of the whole request body. */
  bodyBytes: number;
  /** The status answered, once the response was sent (undefined while pending or when none was). */
  status?: number;
}

export interface FakeCodeEngine {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Every request received, in arrival order. */
  requests: RecordedRequest[];
  /** Clears the stored resources and the recorded requests. */
  reset(): void;
  /** Closes the server and every open socket (hanging requests included). */
  close(): Promise<void>;
}

export interface FakeCodeEngineOptions {
  /** Text served by the v1 kubeconfig endpoints instead of the default kubeconfig. */
  kubeconfig?: string;
}

/** The bearer token inside the default kubeconfig (tests check that it never reaches an audit event). */
export const FAKE_KUBE_TOKEN = 'fake-kube-token-3f9c1e0b7d2a4c68';

type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
interface JsonObject {
  [key: string]: JsonValue;
}

const RECORD_LIMIT = 1024 * 1024;
const PARSE_LIMIT = 8 * 1024 * 1024;
const CHUNK_SIZE = 64 * 1024;
const REGION = 'us-south';
const ACCOUNT_ID = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const DEFAULT_RESOURCE_GROUP = 'b6f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5';
const IMMUTABLE_V2_FIELDS = ['name', 'id', 'project_id', 'resource_type', 'created_at', 'href', 'crn', 'region'];

// ---------------------------------------------------------------------------------------------------------------
// JSON helpers

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(body: Buffer): JsonValue | undefined {
  try {
    return JSON.parse(body.toString('utf8')) as JsonValue;
  } catch {
    return undefined;
  }
}

/** RFC 7386 JSON merge patch (also used, "good enough", for strategic merge patches). */
function mergePatch(target: JsonValue | undefined, patch: JsonValue): JsonValue {
  if (!isJsonObject(patch)) return patch;
  const out: JsonObject = isJsonObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

class PatchError extends Error {}

type PatchOp = (parent: JsonValue, key: string, value: JsonValue | undefined) => void;

function arrayIndex(list: JsonValue[], key: string, allowEnd: boolean): number {
  if (key === '-' && allowEnd) return list.length;
  const index = /^(0|[1-9][0-9]*)$/.test(key) ? Number(key) : -1;
  if (index < 0 || index > list.length || (index === list.length && !allowEnd)) {
    throw new PatchError(`array index ${key} out of range`);
  }
  return index;
}

function requireValue(value: JsonValue | undefined): JsonValue {
  if (value === undefined) throw new PatchError('missing value');
  return value;
}

function requireMember(parent: JsonObject, key: string): void {
  if (!Object.hasOwn(parent, key)) throw new PatchError(`path member ${key} does not exist`);
}

function addOp(parent: JsonValue, key: string, value: JsonValue | undefined): void {
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true), 0, requireValue(value));
  else if (isJsonObject(parent)) parent[key] = requireValue(value);
  else throw new PatchError('cannot add to a scalar');
}

function replaceOp(parent: JsonValue, key: string, value: JsonValue | undefined): void {
  if (Array.isArray(parent)) {
    parent[arrayIndex(parent, key, false)] = requireValue(value);
  } else if (isJsonObject(parent)) {
    requireMember(parent, key);
    parent[key] = requireValue(value);
  } else {
    throw new PatchError('cannot replace in a scalar');
  }
}

function removeOp(parent: JsonValue, key: string): void {
  if (Array.isArray(parent)) {
    parent.splice(arrayIndex(parent, key, false), 1);
  } else if (isJsonObject(parent)) {
    requireMember(parent, key);
    delete parent[key];
  } else {
    throw new PatchError('cannot remove from a scalar');
  }
}

function testOp(parent: JsonValue, key: string, value: JsonValue | undefined): void {
  const current = Array.isArray(parent) ? parent[arrayIndex(parent, key, false)] : isJsonObject(parent) ? parent[key] : undefined;
  if (JSON.stringify(current) !== JSON.stringify(requireValue(value))) throw new PatchError(`test failed at ${key}`);
}

const PATCH_OPS: ReadonlyMap<string, PatchOp> = new Map<string, PatchOp>([
  ['add', addOp],
  ['replace', replaceOp],
  ['remove', removeOp],
  ['test', testOp],
]);

function childOf(node: JsonValue, key: string): JsonValue {
  const child = Array.isArray(node) ? node[Number(key)] : isJsonObject(node) ? node[key] : undefined;
  if (child === undefined) throw new PatchError(`path member ${key} does not exist`);
  return child;
}

/** RFC 6902 JSON patch: add, replace, remove and test on object/array paths. Throws PatchError. */
function applyJsonPatch(document: JsonObject, operations: JsonValue): JsonObject {
  if (!Array.isArray(operations)) throw new PatchError('a JSON patch must be an array of operations');
  const doc = structuredClone(document);
  for (const operation of operations) {
    if (!isJsonObject(operation) || typeof operation.op !== 'string' || typeof operation.path !== 'string') {
      throw new PatchError('each operation needs "op" and "path"');
    }
    const apply = PATCH_OPS.get(operation.op);
    if (!apply) throw new PatchError(`unsupported operation ${operation.op}`);
    if (!operation.path.startsWith('/')) throw new PatchError('patching the whole document is not supported');
    const tokens = operation.path
      .slice(1)
      .split('/')
      .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = tokens.pop() ?? '';
    const parent = tokens.reduce<JsonValue>((node, key) => childOf(node, key), doc);
    apply(parent, last, operation.value);
  }
  return doc;
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP helpers

function headerValue(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function sendBody(
  res: http.ServerResponse,
  status: number,
  contentType: string,
  body: string,
  headers: http.OutgoingHttpHeaders = {},
): void {
  res.writeHead(status, { ...headers, 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendJson(res: http.ServerResponse, status: number, value: JsonValue, headers: http.OutgoingHttpHeaders = {}): void {
  sendBody(res, status, 'application/json', JSON.stringify(value), headers);
}

/**
 * A Kubernetes API answer: protobuf when the client prefers it (client-go and kubectl 1.32 ask for
 * `application/vnd.kubernetes.protobuf,application/json`) and the kind has a protobuf form here, else JSON.
 */
function sendKube(res: http.ServerResponse, status: number, value: JsonObject): void {
  const accept = res.req?.headers.accept ?? '';
  if (/^\s*application\/vnd\.kubernetes\.protobuf\s*(,|;|$)/i.test(accept) && canEncode(value)) {
    const body = encodeKubeProtobuf(value);
    res.writeHead(status, { 'Content-Type': 'application/vnd.kubernetes.protobuf', 'Content-Length': body.length });
    res.end(body);
    return;
  }
  sendJson(res, status, value);
}

function sendEmpty(res: http.ServerResponse, status: number): void {
  res.writeHead(status, { 'Content-Length': 0 });
  res.end();
}

function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

function k8sTimestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const CE_ERROR_CODES: ReadonlyMap<number, string> = new Map([
  [400, 'bad_request'],
  [401, 'unauthorized'],
  [403, 'forbidden'],
  [404, 'resource_not_found'],
  [405, 'method_not_allowed'],
  [409, 'resource_already_exists'],
  [412, 'precondition_failed'],
  [413, 'payload_too_large'],
  [415, 'unsupported_media_type'],
  [428, 'precondition_required'],
  [429, 'too_many_requests'],
  [500, 'internal_server_error'],
  [502, 'bad_gateway'],
  [503, 'service_unavailable'],
  [504, 'gateway_timeout'],
]);

const K8S_REASONS: ReadonlyMap<number, string> = new Map([
  [400, 'BadRequest'],
  [401, 'Unauthorized'],
  [403, 'Forbidden'],
  [404, 'NotFound'],
  [405, 'MethodNotAllowed'],
  [409, 'AlreadyExists'],
  [410, 'Expired'],
  [415, 'UnsupportedMediaType'],
  [422, 'Invalid'],
  [429, 'TooManyRequests'],
  [500, 'InternalError'],
  [503, 'ServiceUnavailable'],
  [504, 'Timeout'],
]);

/** An error in Code Engine's v2 format. */
function ceError(res: http.ServerResponse, status: number, message: string, code?: string): void {
  const errorCode = code ?? CE_ERROR_CODES.get(status) ?? (status >= 500 ? 'internal_server_error' : 'bad_request');
  sendJson(res, status, {
    errors: [{ code: errorCode, message }],
    trace: `codeengine-api-${randomHex(16)}`,
    status_code: status,
  });
}

/** An error as a Kubernetes `Status` object. */
function k8sError(res: http.ServerResponse, status: number, message: string, details?: JsonObject, reason?: string): void {
  sendKube(res, status, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: reason ?? K8S_REASONS.get(status) ?? 'Unknown',
    ...(details ? { details } : {}),
    code: status,
  });
}

type Family = 'v2' | 'k8s';

function familyOf(path: string): Family {
  return path === '/v2' || path.startsWith('/v2/') ? 'v2' : 'k8s';
}

function familyError(res: http.ServerResponse, family: Family, status: number, message: string): void {
  if (family === 'v2') ceError(res, status, message);
  else k8sError(res, status, message);
}

/** Resolves true on 'drain', false if the response closes first. */
function drained(res: http.ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = done(true);
    const onClose = done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

/** Writes `total` bytes of `unit` repeated, in 64 KiB chunks, honouring backpressure; never holds the body. */
async function streamPattern(res: http.ServerResponse, total: number, unit: Buffer): Promise<void> {
  const base = Buffer.alloc(CHUNK_SIZE + unit.length);
  for (let i = 0; i < base.length; i += unit.length) unit.copy(base, i);
  let sent = 0;
  while (sent < total) {
    if (res.destroyed) return;
    const size = Math.min(CHUNK_SIZE, total - sent);
    const offset = sent % unit.length;
    sent += size;
    if (!res.write(base.subarray(offset, offset + size)) && !(await drained(res))) return;
  }
  res.end();
}

function byteCount(url: URL): number | undefined {
  const raw = url.searchParams.get('bytes');
  return raw !== null && /^\d+$/.test(raw) ? Number(raw) : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// State, request context and routing

class State {
  readonly projects = new Map<string, JsonObject>();
  /** key `${projectId}/${collection}` -> resources by name (bindings: by id) */
  readonly resources = new Map<string, Map<string, JsonObject>>();
  /** key group \0 namespace \0 plural \0 name */
  readonly k8s = new Map<string, JsonObject>();
  private resourceVersion = 1;

  bucket(projectId: string, collection: string): Map<string, JsonObject> {
    const key = `${projectId}/${collection}`;
    let bucket = this.resources.get(key);
    if (!bucket) this.resources.set(key, (bucket = new Map()));
    return bucket;
  }

  dropProject(projectId: string): void {
    this.projects.delete(projectId);
    for (const key of [...this.resources.keys()]) if (key.startsWith(`${projectId}/`)) this.resources.delete(key);
  }

  nextResourceVersion(): string {
    this.resourceVersion += 1;
    return String(this.resourceVersion);
  }

  clear(): void {
    this.projects.clear();
    this.resources.clear();
    this.k8s.clear();
    this.resourceVersion = 1;
  }
}

interface ServerContext {
  state: State;
  requests: RecordedRequest[];
  timers: Set<NodeJS.Timeout>;
  baseUrl: string;
  kubeconfig: string | undefined;
}

interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
  params: Readonly<Record<string, string>>;
  /** The request body (up to PARSE_LIMIT; not kept for sink routes). */
  body: Buffer;
  sha256: string | undefined;
  record: RecordedRequest;
  server: ServerContext;
}

type Handler = (ctx: Ctx) => void | Promise<void>;

interface Route {
  segments: string[];
  methods: Partial<Record<string, Handler>>;
  /** Sink routes hash the body instead of buffering it. */
  sink: boolean;
}

function route(pattern: string, methods: Partial<Record<string, Handler>>, sink = false): Route {
  return { segments: pattern.split('/').filter(Boolean), methods, sink };
}

function matchRoute(r: Route, segments: string[]): Record<string, string> | undefined {
  if (r.segments.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, expected] of r.segments.entries()) {
    const actual = segments[i] ?? '';
    if (expected.startsWith(':')) params[expected.slice(1)] = actual;
    else if (expected !== actual) return undefined;
  }
  return params;
}

function splitPath(path: string): string[] {
  return path
    .split('/')
    .filter(Boolean)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
}

function param(ctx: Ctx, name: string): string {
  return ctx.params[name] ?? '';
}

// ---------------------------------------------------------------------------------------------------------------
// v2 REST API

interface CollectionSpec {
  resourceType: string;
  createStatus: number;
  patch: boolean;
  put: boolean;
  /** Bindings are addressed by generated id and need no name. */
  byId?: boolean;
  /** Runs may omit the name; one is generated from this prefix. */
  generatedPrefix?: string;
}

const COLLECTIONS: ReadonlyMap<string, CollectionSpec> = new Map<string, CollectionSpec>([
  ['apps', { resourceType: 'app_v2', createStatus: 201, patch: true, put: false }],
  ['jobs', { resourceType: 'job_v2', createStatus: 201, patch: true, put: false }],
  ['job_runs', { resourceType: 'job_run_v2', createStatus: 202, patch: true, put: true, generatedPrefix: 'jobrun' }],
  ['builds', { resourceType: 'build_v2', createStatus: 201, patch: true, put: false }],
  ['build_runs', { resourceType: 'build_run_v2', createStatus: 202, patch: true, put: true, generatedPrefix: 'buildrun' }],
  ['config_maps', { resourceType: 'config_map_v2', createStatus: 201, patch: false, put: true }],
  ['secrets', { resourceType: 'secret_generic_v2', createStatus: 201, patch: false, put: true }],
  ['functions', { resourceType: 'function_v2', createStatus: 201, patch: true, put: false }],
  ['bindings', { resourceType: 'binding_v2', createStatus: 201, patch: false, put: false, byId: true }],
  ['domain_mappings', { resourceType: 'domain_mapping_v2', createStatus: 201, patch: true, put: false }],
  ['allowed_outbound_destinations', { resourceType: 'allowed_outbound_destination_v2', createStatus: 201, patch: true, put: false }],
  ['persistent_data_stores', { resourceType: 'persistent_data_store_v2', createStatus: 201, patch: false, put: false }],
]);

function resourceTypeFor(collection: string, spec: CollectionSpec, body: JsonObject): string {
  return collection === 'secrets' && typeof body.format === 'string' ? `secret_${body.format}_v2` : spec.resourceType;
}

function withETag(resource: JsonObject): http.OutgoingHttpHeaders {
  return { ETag: `"${typeof resource.entity_tag === 'string' ? resource.entity_tag : '1'}"` };
}

/** Parses the body as a JSON object or answers 400. */
function jsonBody(ctx: Ctx): JsonObject | undefined {
  const body = parseJson(ctx.body);
  if (isJsonObject(body)) return body;
  ceError(ctx.res, 400, 'The request body must be a JSON object.');
  return undefined;
}

function sendList(ctx: Ctx, key: string, items: JsonObject[], href: string): void {
  const limitRaw = ctx.url.searchParams.get('limit');
  const limit = limitRaw !== null && /^[1-9]\d*$/.test(limitRaw) ? Number(limitRaw) : 100;
  const startRaw = ctx.url.searchParams.get('start');
  const start = startRaw !== null && /^\d+$/.test(startRaw) ? Number(startRaw) : 0;
  const body: JsonObject = { limit, first: { href: `${href}?limit=${limit}` }, [key]: items.slice(start, start + limit) };
  if (start + limit < items.length) {
    body.next = { href: `${href}?limit=${limit}&start=${start + limit}`, start: String(start + limit) };
  }
  sendJson(ctx.res, 200, body);
}

function findProject(ctx: Ctx): JsonObject | undefined {
  const project = ctx.server.state.projects.get(param(ctx, 'pid'));
  if (!project) ceError(ctx.res, 404, 'Resource not found.');
  return project;
}

/** Checks If-Match against the entity tag; answers 428/412 and returns false when it fails. */
function checkIfMatch(ctx: Ctx, current: JsonObject): boolean {
  const header = headerValue(ctx.req, 'if-match');
  if (header === undefined || header.trim() === '') {
    ceError(ctx.res, 428, 'The If-Match header is required for this operation.');
    return false;
  }
  const tags = header.split(',').map((t) =>
    t
      .trim()
      .replace(/^W\//, '')
      .replace(/^"(.*)"$/, '$1'),
  );
  if (!tags.some((t) => t === '*' || t === current.entity_tag)) {
    ceError(ctx.res, 412, 'The If-Match header does not match the current entity tag of the resource.');
    return false;
  }
  return true;
}

/** PATCH (merge) or PUT (replace) a v2 resource: If-Match, body, keep immutable fields, bump entity_tag. */
function updateV2(ctx: Ctx, current: JsonObject, mode: 'merge' | 'replace', save: (next: JsonObject) => void): void {
  if (!checkIfMatch(ctx, current)) return;
  const body = jsonBody(ctx);
  if (!body) return;
  const merged = mode === 'merge' ? mergePatch(current, body) : { ...body };
  const next: JsonObject = isJsonObject(merged) ? merged : {};
  for (const field of IMMUTABLE_V2_FIELDS) {
    const value = current[field];
    if (value !== undefined) next[field] = value;
  }
  next.entity_tag = String(Number(current.entity_tag ?? '1') + 1);
  next.updated_at = new Date().toISOString();
  save(next);
  sendJson(ctx.res, 200, next, withETag(next));
}

function listProjects(ctx: Ctx): void {
  sendList(ctx, 'projects', [...ctx.server.state.projects.values()], `${ctx.server.baseUrl}/v2/projects`);
}

function createProject(ctx: Ctx): void {
  const body = jsonBody(ctx);
  if (!body) return;
  const { name } = body;
  if (typeof name !== 'string' || name === '') return ceError(ctx.res, 400, "The field 'name' is required.");
  const projects = ctx.server.state.projects;
  if ([...projects.values()].some((p) => p.name === name)) {
    return ceError(ctx.res, 409, `Resource with name '${name}' already exists.`);
  }
  const id = randomUUID();
  const project: JsonObject = {
    ...body,
    id,
    name,
    crn: `crn:v1:bluemix:public:codeengine:${REGION}:a/${ACCOUNT_ID}:${id}::`,
    region: REGION,
    account_id: ACCOUNT_ID,
    resource_group_id: typeof body.resource_group_id === 'string' ? body.resource_group_id : DEFAULT_RESOURCE_GROUP,
    status: 'creating',
    resource_type: 'project_v2',
    entity_tag: '1',
    created_at: new Date().toISOString(),
    href: `${ctx.server.baseUrl}/v2/projects/${id}`,
  };
  projects.set(id, project);
  sendJson(ctx.res, 202, project, withETag(project));
}

function getProject(ctx: Ctx): void {
  const project = findProject(ctx);
  if (project) sendJson(ctx.res, 200, project, withETag(project));
}

function patchProject(ctx: Ctx): void {
  const project = findProject(ctx);
  if (project) updateV2(ctx, project, 'merge', (next) => ctx.server.state.projects.set(param(ctx, 'pid'), next));
}

function deleteProject(ctx: Ctx): void {
  if (!findProject(ctx)) return;
  ctx.server.state.dropProject(param(ctx, 'pid'));
  sendEmpty(ctx.res, 202);
}

interface CollectionTarget {
  spec: CollectionSpec;
  collection: string;
  bucket: Map<string, JsonObject>;
  href: string;
}

/** Resolves project + collection from the params, or answers 404. */
function findCollection(ctx: Ctx): CollectionTarget | undefined {
  const collection = param(ctx, 'collection');
  const spec = COLLECTIONS.get(collection);
  if (!spec) return void ceError(ctx.res, 404, 'Resource not found.');
  if (!findProject(ctx)) return undefined;
  const pid = param(ctx, 'pid');
  const href = `${ctx.server.baseUrl}/v2/projects/${pid}/${collection}`;
  return { spec, collection, bucket: ctx.server.state.bucket(pid, collection), href };
}

function findItem(ctx: Ctx): (CollectionTarget & { key: string; item: JsonObject }) | undefined {
  const target = findCollection(ctx);
  if (!target) return undefined;
  const key = param(ctx, 'key');
  const item = target.bucket.get(key);
  if (!item) return void ceError(ctx.res, 404, 'Resource not found.');
  return { ...target, key, item };
}

function nameForCreate(ctx: Ctx, spec: CollectionSpec, body: JsonObject): string | null | undefined {
  if (typeof body.name === 'string' && body.name !== '') return body.name;
  if (spec.byId) return null;
  if (spec.generatedPrefix) return `${spec.generatedPrefix}-${randomHex(3).slice(0, 5)}`;
  ceError(ctx.res, 400, "The field 'name' is required.");
  return undefined;
}

function createItem(ctx: Ctx): void {
  const target = findCollection(ctx);
  if (!target) return;
  const body = jsonBody(ctx);
  if (!body) return;
  const name = nameForCreate(ctx, target.spec, body);
  if (name === undefined) return;
  if (name !== null && !target.spec.byId && target.bucket.has(name)) {
    return ceError(ctx.res, 409, `Resource with name '${name}' already exists.`);
  }
  const id = randomUUID();
  const key = target.spec.byId || name === null ? id : name;
  const resource: JsonObject = {
    ...body,
    ...(name === null ? {} : { name }),
    id,
    project_id: param(ctx, 'pid'),
    resource_type: resourceTypeFor(target.collection, target.spec, body),
    entity_tag: '1',
    created_at: new Date().toISOString(),
    href: `${target.href}/${encodeURIComponent(key)}`,
  };
  target.bucket.set(key, resource);
  sendJson(ctx.res, target.spec.createStatus, resource, withETag(resource));
}

function listItems(ctx: Ctx): void {
  const target = findCollection(ctx);
  if (target) sendList(ctx, target.collection, [...target.bucket.values()], target.href);
}

function getItem(ctx: Ctx): void {
  const found = findItem(ctx);
  if (found) sendJson(ctx.res, 200, found.item, withETag(found.item));
}

function deleteItem(ctx: Ctx): void {
  const found = findItem(ctx);
  if (!found) return;
  found.bucket.delete(found.key);
  sendEmpty(ctx.res, 202);
}

function updateItem(mode: 'merge' | 'replace'): Handler {
  return (ctx) => {
    const spec = COLLECTIONS.get(param(ctx, 'collection'));
    if (!spec || !(mode === 'merge' ? spec.patch : spec.put)) return ceError(ctx.res, 404, 'Resource not found.');
    const found = findItem(ctx);
    if (found) updateV2(ctx, found.item, mode, (next) => found.bucket.set(found.key, next));
  };
}

function findApp(ctx: Ctx): JsonObject | undefined {
  if (!findProject(ctx)) return undefined;
  const app = ctx.server.state.bucket(param(ctx, 'pid'), 'apps').get(param(ctx, 'app'));
  if (!app) ceError(ctx.res, 404, 'Resource not found.');
  return app;
}

function revisionOf(ctx: Ctx, appName: string): JsonObject {
  const name = `${appName}-00001`;
  return {
    name,
    app_name: appName,
    project_id: param(ctx, 'pid'),
    resource_type: 'app_revision_v2',
    status: 'ready',
    href: `${ctx.server.baseUrl}/v2/projects/${param(ctx, 'pid')}/apps/${appName}/revisions/${name}`,
  };
}

function listRevisions(ctx: Ctx): void {
  if (!findApp(ctx)) return;
  const href = `${ctx.server.baseUrl}/v2/projects/${param(ctx, 'pid')}/apps/${param(ctx, 'app')}/revisions`;
  sendList(ctx, 'revisions', [revisionOf(ctx, param(ctx, 'app'))], href);
}

function revisionHandler(status: 200 | 202): Handler {
  return (ctx) => {
    if (!findApp(ctx)) return;
    const revision = revisionOf(ctx, param(ctx, 'app'));
    if (param(ctx, 'rev') !== revision.name) return ceError(ctx.res, 404, 'Resource not found.');
    if (status === 202) sendEmpty(ctx.res, 202);
    else sendJson(ctx.res, 200, revision);
  };
}

function listInstances(ctx: Ctx): void {
  if (!findApp(ctx)) return;
  const app = param(ctx, 'app');
  const instance: JsonObject = {
    name: `${app}-00001-deployment-7d9f8c6b5-x2k4q`,
    app_name: app,
    revision_name: `${app}-00001`,
    project_id: param(ctx, 'pid'),
    resource_type: 'app_instance_v2',
    status: 'running',
  };
  sendList(ctx, 'instances', [instance], `${ctx.server.baseUrl}/v2/projects/${param(ctx, 'pid')}/apps/${app}/instances`);
}

function egressIps(ctx: Ctx): void {
  if (findProject(ctx)) sendJson(ctx.res, 200, { private: ['10.240.0.10', '10.240.64.10'], public: ['169.48.10.20', '169.48.10.21'] });
}

function statusDetails(ctx: Ctx): void {
  if (findProject(ctx)) sendJson(ctx.res, 200, { domain: 'ready', project: 'enabled', vpe_not_enabled: false });
}

function functionRuntimes(ctx: Ctx): void {
  sendJson(ctx.res, 200, {
    function_runtimes: [
      { id: 'nodejs-20', name: 'Node.js 20', family: 'nodejs', default: true, deprecated: false, optimized: true },
      { id: 'python-3.11', name: 'Python 3.11', family: 'python', default: true, deprecated: false, optimized: true },
    ],
  });
}

function uploadSink(ctx: Ctx): void {
  sendJson(ctx.res, 200, { received_bytes: ctx.record.bodyBytes, sha256: ctx.sha256 ?? '' });
}

const DOWNLOAD_UNIT = Buffer.from(Array.from({ length: 251 }, (_, i) => i));

async function download(ctx: Ctx): Promise<void> {
  const total = byteCount(ctx.url);
  if (total === undefined) return ceError(ctx.res, 400, "The query parameter 'bytes' must be a non-negative integer.");
  ctx.res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': total });
  await streamPattern(ctx.res, total, DOWNLOAD_UNIT);
}

function echo(ctx: Ctx): void {
  const headers: JsonObject = {};
  for (const [name, value] of Object.entries(ctx.req.headers)) if (value !== undefined) headers[name] = value;
  ctx.res.setHeader('Set-Cookie', ['a=1', 'b=2']);
  ctx.res.setHeader('X-Upstream-Header', 'Mixed-Case-Value');
  sendJson(ctx.res, 200, { method: ctx.req.method ?? '', url: ctx.req.url ?? '', headers });
}

// ---------------------------------------------------------------------------------------------------------------
// v1 kubeconfig

function defaultKubeconfig(server: string, namespace: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: fake-code-engine',
    '  cluster:',
    `    server: ${server}`,
    'contexts:',
    `- name: ${namespace}`,
    '  context:',
    '    cluster: fake-code-engine',
    `    namespace: ${namespace}`,
    `    user: ${namespace}`,
    `current-context: ${namespace}`,
    'users:',
    `- name: ${namespace}`,
    '  user:',
    `    token: ${FAKE_KUBE_TOKEN}`,
    '',
  ].join('\n');
}

/** The short Kubernetes namespace of a project (real ones look like `4svg40kna19`). */
function namespaceOf(projectId: string): string {
  return projectId.replace(/-/g, '').slice(0, 11);
}

function sendKubeconfig(ctx: Ctx, namespace: string): void {
  const text = ctx.server.kubeconfig ?? defaultKubeconfig(ctx.server.baseUrl, namespace);
  sendBody(ctx.res, 200, 'text/plain', text);
}

function projectKubeconfig(ctx: Ctx): void {
  if (findProject(ctx)) sendKubeconfig(ctx, namespaceOf(param(ctx, 'pid')));
}

function namespaceKubeconfig(ctx: Ctx): void {
  sendKubeconfig(ctx, param(ctx, 'pid'));
}

// ---------------------------------------------------------------------------------------------------------------
// Kubernetes API

interface ApiGroup {
  group: string;
  versions: string[];
  kinds: Readonly<Record<string, string>>;
}

const API_GROUPS: readonly ApiGroup[] = [
  {
    group: '',
    versions: ['v1'],
    kinds: {
      pods: 'Pod',
      configmaps: 'ConfigMap',
      secrets: 'Secret',
      services: 'Service',
      serviceaccounts: 'ServiceAccount',
      events: 'Event',
      resourcequotas: 'ResourceQuota',
      limitranges: 'LimitRange',
    },
  },
  { group: 'apps', versions: ['v1'], kinds: { deployments: 'Deployment', daemonsets: 'DaemonSet' } },
  {
    group: 'serving.knative.dev',
    versions: ['v1'],
    kinds: { services: 'Service', configurations: 'Configuration', revisions: 'Revision', routes: 'Route' },
  },
  { group: 'shipwright.io', versions: ['v1beta1', 'v1alpha1'], kinds: { builds: 'Build', buildruns: 'BuildRun' } },
  {
    group: 'codeengine.cloud.ibm.com',
    versions: ['v1beta1', 'v1alpha1'],
    kinds: { jobdefinitions: 'JobDefinition', jobruns: 'JobRun', functions: 'Function' },
  },
  { group: 'sources.knative.dev', versions: ['v1', 'v1beta1'], kinds: { pingsources: 'PingSource', kafkasources: 'KafkaSource' } },
  { group: 'sources.codeengine.cloud.ibm.com', versions: ['v1alpha1'], kinds: { cossources: 'CosSource' } },
];

interface K8sTarget {
  group: string;
  version: string;
  ns: string;
  plural: string;
  name: string;
}

function k8sTarget(ctx: Ctx): K8sTarget {
  return {
    group: param(ctx, 'group'),
    version: ctx.params.version ?? 'v1',
    ns: param(ctx, 'ns'),
    plural: param(ctx, 'plural'),
    name: param(ctx, 'name'),
  };
}

function kindOf(t: K8sTarget): string {
  const kinds = API_GROUPS.find((g) => g.group === t.group)?.kinds;
  const known = kinds && Object.hasOwn(kinds, t.plural) ? kinds[t.plural] : undefined;
  return known ?? t.plural.charAt(0).toUpperCase() + t.plural.slice(1).replace(/s$/, '');
}

const apiVersionOf = (t: K8sTarget): string => (t.group ? `${t.group}/${t.version}` : t.version);
const keyPrefix = (t: K8sTarget): string => [t.group, t.ns, t.plural, ''].join('\u0000');
const k8sKey = (t: K8sTarget, name: string): string => keyPrefix(t) + name;
const labelOf = (t: K8sTarget): string => (t.group ? `${t.plural}.${t.group}` : t.plural);

function k8sDetails(t: K8sTarget, name: string): JsonObject {
  return { name, ...(t.group ? { group: t.group } : {}), kind: t.plural };
}

function k8sNotFound(ctx: Ctx, t: K8sTarget, name: string): void {
  k8sError(ctx.res, 404, `${labelOf(t)} "${name}" not found`, k8sDetails(t, name));
}

/** The stored object addressed by the params (only the `status` subresource aliases it), or a 404. */
function findObject(ctx: Ctx): { t: K8sTarget; object: JsonObject } | undefined {
  const t = k8sTarget(ctx);
  const sub = ctx.params.sub;
  if (sub !== undefined && sub !== 'status') {
    return void k8sError(ctx.res, 404, 'the server could not find the requested resource', undefined, 'NotFound');
  }
  const object = ctx.server.state.k8s.get(k8sKey(t, t.name));
  if (!object) return void k8sNotFound(ctx, t, t.name);
  return { t, object };
}

/** Parses the body as JSON (object or array) or answers a 400 Status. */
function k8sBody(ctx: Ctx): JsonValue | undefined {
  const contentType = headerValue(ctx.req, 'content-type') ?? '';
  if (/^application\/vnd\.kubernetes\.protobuf/i.test(contentType)) {
    try {
      return decodeKubeProtobuf(ctx.body);
    } catch (err) {
      k8sError(ctx.res, 400, `the request body is not valid protobuf: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
  }
  const body = parseJson(ctx.body);
  if (body === undefined) k8sError(ctx.res, 400, 'the request body is not valid JSON');
  return body;
}

function metadataOf(object: JsonObject): JsonObject {
  return isJsonObject(object.metadata) ? object.metadata : {};
}

/** Stores `next` under `t`, keeping server-owned metadata from `previous` and bumping resourceVersion. */
function storeObject(ctx: Ctx, t: K8sTarget, name: string, next: JsonObject, previous?: JsonObject): JsonObject {
  const before = previous ? metadataOf(previous) : {};
  const stored: JsonObject = {
    ...next,
    apiVersion: typeof next.apiVersion === 'string' ? next.apiVersion : apiVersionOf(t),
    kind: typeof next.kind === 'string' ? next.kind : kindOf(t),
    metadata: {
      ...metadataOf(next),
      name,
      namespace: t.ns,
      uid: before.uid ?? randomUUID(),
      creationTimestamp: before.creationTimestamp ?? k8sTimestamp(),
      resourceVersion: ctx.server.state.nextResourceVersion(),
    },
  };
  if (t.group === '' && t.plural === 'secrets') foldStringData(stored);
  ctx.server.state.k8s.set(k8sKey(t, name), stored);
  return stored;
}

/** As the API server does: a Secret's stringData is written into data (base64) and never stored or returned. */
function foldStringData(secret: JsonObject): void {
  const { stringData } = secret;
  delete secret.stringData;
  if (!isJsonObject(stringData)) return;
  const data: JsonObject = isJsonObject(secret.data) ? { ...secret.data } : {};
  for (const [key, value] of Object.entries(stringData)) if (typeof value === 'string') data[key] = Buffer.from(value).toString('base64');
  secret.data = data;
}

/** `fieldSelector=metadata.name=<name>` (what kubectl delete waits with); other selectors match everything. */
function selectedByField(url: URL, object: JsonObject): boolean {
  const selector = url.searchParams.get('fieldSelector');
  const name = selector ? /^metadata\.name(?:=|==)(.*)$/.exec(selector)?.[1] : undefined;
  return name === undefined || metadataOf(object).name === name;
}

function getNamespace(ctx: Ctx): void {
  const name = param(ctx, 'ns');
  sendKube(ctx.res, 200, {
    kind: 'Namespace',
    apiVersion: 'v1',
    metadata: { name },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  });
}

function k8sList(ctx: Ctx): void {
  const t = k8sTarget(ctx);
  const prefix = keyPrefix(t);
  const items = [...ctx.server.state.k8s.entries()]
    .filter(([key, object]) => key.startsWith(prefix) && selectedByField(ctx.url, object))
    .map(([, object]) => object);
  sendKube(ctx.res, 200, { kind: `${kindOf(t)}List`, apiVersion: apiVersionOf(t), metadata: { resourceVersion: '1' }, items });
}

function k8sCreate(ctx: Ctx): void {
  const t = k8sTarget(ctx);
  const body = k8sBody(ctx);
  if (body === undefined) return;
  if (!isJsonObject(body)) return k8sError(ctx.res, 400, 'the request body must be a JSON object');
  const meta = metadataOf(body);
  const generated = typeof meta.generateName === 'string' ? `${meta.generateName}${randomHex(3).slice(0, 5)}` : undefined;
  const name = typeof meta.name === 'string' && meta.name !== '' ? meta.name : generated;
  if (name === undefined) {
    const message = `${kindOf(t)} "" is invalid: metadata.name: Required value: name or generateName is required`;
    return k8sError(ctx.res, 422, message, { kind: t.plural });
  }
  if (ctx.server.state.k8s.has(k8sKey(t, name))) {
    return k8sError(ctx.res, 409, `${labelOf(t)} "${name}" already exists`, k8sDetails(t, name));
  }
  sendKube(ctx.res, 201, storeObject(ctx, t, name, body));
}

function k8sGet(ctx: Ctx): void {
  const found = findObject(ctx);
  if (found) sendKube(ctx.res, 200, found.object);
}

function k8sReplace(ctx: Ctx): void {
  const found = findObject(ctx);
  if (!found) return;
  const body = k8sBody(ctx);
  if (body === undefined) return;
  if (!isJsonObject(body)) return k8sError(ctx.res, 400, 'the request body must be a JSON object');
  sendKube(ctx.res, 200, storeObject(ctx, found.t, found.t.name, body, found.object));
}

const MERGE_PATCH_TYPES = new Set(['application/merge-patch+json', 'application/strategic-merge-patch+json']);

function patched(ctx: Ctx, object: JsonObject, patch: JsonValue): JsonObject | undefined {
  const contentType = (headerValue(ctx.req, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (MERGE_PATCH_TYPES.has(contentType)) {
    const merged = mergePatch(object, patch);
    if (isJsonObject(merged)) return merged;
    return void k8sError(ctx.res, 400, 'a merge patch must be a JSON object');
  }
  if (contentType === 'application/json-patch+json') {
    try {
      return applyJsonPatch(object, patch);
    } catch (err) {
      if (!(err instanceof PatchError)) throw err;
      return void k8sError(ctx.res, 422, `the JSON patch could not be applied: ${err.message}`);
    }
  }
  return void k8sError(
    ctx.res,
    415,
    `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`,
  );
}

function k8sPatch(ctx: Ctx): void {
  const found = findObject(ctx);
  if (!found) return;
  const patch = k8sBody(ctx);
  if (patch === undefined) return;
  const next = patched(ctx, found.object, patch);
  if (next) sendKube(ctx.res, 200, storeObject(ctx, found.t, found.t.name, next, found.object));
}

function k8sSuccess(t: K8sTarget, name: string, uid: JsonValue | undefined): JsonObject {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    details: { ...k8sDetails(t, name), ...(uid === undefined ? {} : { uid }) },
  };
}

function k8sDelete(ctx: Ctx): void {
  const found = findObject(ctx);
  if (!found) return;
  ctx.server.state.k8s.delete(k8sKey(found.t, found.t.name));
  sendKube(ctx.res, 200, k8sSuccess(found.t, found.t.name, metadataOf(found.object).uid));
}

function k8sDeleteCollection(ctx: Ctx): void {
  const t = k8sTarget(ctx);
  const prefix = keyPrefix(t);
  for (const key of [...ctx.server.state.k8s.keys()]) if (key.startsWith(prefix)) ctx.server.state.k8s.delete(key);
  sendKube(ctx.res, 200, k8sSuccess(t, '', undefined));
}

const LOG_UNIT = Buffer.from('log line\n');

async function podLog(ctx: Ctx): Promise<void> {
  const total = byteCount(ctx.url) ?? LOG_UNIT.length * 10;
  ctx.res.writeHead(200, { 'Content-Type': 'text/plain' });
  await streamPattern(ctx.res, total, LOG_UNIT);
}

function apiVersions(ctx: Ctx): void {
  const serverAddress = ctx.server.baseUrl.replace(/^https?:\/\//, '');
  sendJson(ctx.res, 200, {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  });
}

function apiGroups(ctx: Ctx): void {
  const groups = API_GROUPS.filter((g) => g.group !== '').map((g) => {
    const versions = g.versions.map((version) => ({ groupVersion: `${g.group}/${version}`, version }));
    return { name: g.group, versions, preferredVersion: versions[0] ?? null };
  });
  sendJson(ctx.res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups });
}

function apiResources(ctx: Ctx): void {
  const t = k8sTarget(ctx);
  const group = API_GROUPS.find((g) => g.group === t.group && g.versions.includes(t.version));
  if (!group) return k8sError(ctx.res, 404, 'the server could not find the requested resource');
  const verbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update'];
  const resources = Object.entries(group.kinds).map(([name, kind]) => ({ name, singularName: '', namespaced: true, kind, verbs }));
  sendJson(ctx.res, 200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf(t), resources });
}

function version(ctx: Ctx): void {
  // kubectl dispatchers (the Google Cloud SDK's) pick the kubectl release nearest the server's: 1.32.
  sendJson(ctx.res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.4+fake', platform: 'linux/amd64' });
}

// ---------------------------------------------------------------------------------------------------------------
// Route table (first match wins; specific routes before generic ones)

const K8S_COLLECTION = { GET: k8sList, POST: k8sCreate, DELETE: k8sDeleteCollection };
const K8S_ITEM = { GET: k8sGet, PUT: k8sReplace, PATCH: k8sPatch, DELETE: k8sDelete };
const K8S_SUBRESOURCE = { GET: k8sGet, PUT: k8sReplace, PATCH: k8sPatch };

const ROUTES: readonly Route[] = [
  route('/v2/_upload', { '*': uploadSink }, true),
  route('/v2/_download', { '*': download }),
  route('/v2/_echo', { '*': echo }),
  route('/v2/function_runtimes', { GET: functionRuntimes }),
  route('/v2/projects', { GET: listProjects, POST: createProject }),
  route('/v2/projects/:pid', { GET: getProject, PATCH: patchProject, DELETE: deleteProject }),
  route('/v2/projects/:pid/egress_ips', { GET: egressIps }),
  route('/v2/projects/:pid/status_details', { GET: statusDetails }),
  route('/v2/projects/:pid/apps/:app/revisions', { GET: listRevisions }),
  route('/v2/projects/:pid/apps/:app/revisions/:rev', { GET: revisionHandler(200), DELETE: revisionHandler(202) }),
  route('/v2/projects/:pid/apps/:app/instances', { GET: listInstances }),
  route('/v2/projects/:pid/:collection', { GET: listItems, POST: createItem }),
  route('/v2/projects/:pid/:collection/:key', {
    GET: getItem,
    DELETE: deleteItem,
    PATCH: updateItem('merge'),
    PUT: updateItem('replace'),
  }),
  route('/api/v1/project/:pid/config', { GET: projectKubeconfig }),
  route('/api/v1/namespaces/:pid/config', { GET: namespaceKubeconfig }),
  route('/api', { GET: apiVersions }),
  route('/apis', { GET: apiGroups }),
  route('/version', { GET: version }),
  route('/api/:version', { GET: apiResources }),
  route('/apis/:group/:version', { GET: apiResources }),
  route('/api/v1/namespaces/:ns', { GET: getNamespace }),
  route('/api/v1/namespaces/:ns/pods/:name/log', { GET: podLog }),
  route('/api/:version/namespaces/:ns/:plural', K8S_COLLECTION),
  route('/api/:version/namespaces/:ns/:plural/:name', K8S_ITEM),
  route('/api/:version/namespaces/:ns/:plural/:name/:sub', K8S_SUBRESOURCE),
  route('/apis/:group/:version/namespaces/:ns/:plural', K8S_COLLECTION),
  route('/apis/:group/:version/namespaces/:ns/:plural/:name', K8S_ITEM),
  route('/apis/:group/:version/namespaces/:ns/:plural/:name/:sub', K8S_SUBRESOURCE),
];

interface Resolved {
  route: Route | undefined;
  handler: Handler | undefined;
  params: Record<string, string>;
}

function resolve(method: string, path: string): Resolved {
  const segments = splitPath(path);
  let pathMatched: Resolved = { route: undefined, handler: undefined, params: {} };
  for (const r of ROUTES) {
    const params = matchRoute(r, segments);
    if (!params) continue;
    const handler = r.methods[method] ?? r.methods['*'];
    if (handler) return { route: r, handler, params };
    if (!pathMatched.route) pathMatched = { route: r, handler: undefined, params };
  }
  return pathMatched;
}

// ---------------------------------------------------------------------------------------------------------------
// Request pipeline: record, read body, apply x-fake-* hooks, dispatch

interface Collected {
  body: Buffer;
  sha256: string | undefined;
  complete: boolean;
}

/** Reads the whole body: keeps the first MiB in the record, buffers (or, for sinks, hashes) the rest. */
function collectBody(req: http.IncomingMessage, record: RecordedRequest, sink: boolean): Promise<Collected> {
  return new Promise((resolveBody) => {
    const recorded: Buffer[] = [];
    const kept: Buffer[] = [];
    let recordedBytes = 0;
    let keptBytes = 0;
    const hash = sink ? createHash('sha256') : undefined;
    let finished = false;
    const finish = (complete: boolean): void => {
      if (finished) return;
      finished = true;
      record.body = Buffer.concat(recorded);
      resolveBody({ body: Buffer.concat(kept), sha256: hash?.digest('hex'), complete });
    };
    req.on('data', (chunk: Buffer) => {
      record.bodyBytes += chunk.length;
      if (recordedBytes < RECORD_LIMIT) {
        const part = chunk.subarray(0, RECORD_LIMIT - recordedBytes);
        recorded.push(part);
        recordedBytes += part.length;
      }
      if (hash) hash.update(chunk);
      else if (keptBytes < PARSE_LIMIT) {
        kept.push(chunk);
        keptBytes += chunk.length;
      }
    });
    req.on('end', () => finish(true));
    req.on('error', () => finish(false));
    req.on('close', () => finish(req.complete));
  });
}

/** Resolves true after `ms`, or false as soon as the client goes away (the timer is cleared then). */
function delay(ms: number, res: http.ServerResponse, timers: Set<NodeJS.Timeout>): Promise<boolean> {
  return new Promise((resolveDelay) => {
    const settle = (ok: boolean) => (): void => {
      clearTimeout(timer);
      timers.delete(timer);
      res.off('close', onClose);
      resolveDelay(ok);
    };
    const timer = setTimeout(settle(true), ms);
    const onClose = settle(false);
    timers.add(timer);
    res.on('close', onClose);
  });
}

/** Applies the x-fake-* hooks; returns true when the request was fully dealt with (or must never be). */
async function applyHooks(ctx: Ctx, family: Family): Promise<boolean> {
  const { req, res } = ctx;
  if (headerValue(req, 'x-fake-reset') === '1') {
    req.socket.resetAndDestroy();
    return true;
  }
  if (headerValue(req, 'x-fake-hang') === '1') return true;
  const delayMs = Number(headerValue(req, 'x-fake-delay-ms') ?? '0');
  if (Number.isFinite(delayMs) && delayMs > 0 && !(await delay(delayMs, res, ctx.server.timers))) return true;
  const status = Number(headerValue(req, 'x-fake-status') ?? '');
  if (Number.isInteger(status) && status >= 200 && status <= 599) {
    familyError(res, family, status, `Injected failure ${status}.`);
    return true;
  }
  return false;
}

async function handleRequest(server: ServerContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const method = req.method ?? 'GET';
  const url = new URL(req.url ?? '/', 'http://fake.invalid');
  const record: RecordedRequest = {
    method,
    url: req.url ?? '/',
    path: url.pathname,
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    body: Buffer.alloc(0),
    bodyBytes: 0,
  };
  server.requests.push(record);
  res.on('finish', () => {
    record.status = res.statusCode;
  });
  const family = familyOf(url.pathname);
  const correlationId = headerValue(req, 'x-correlation-id');
  if (family === 'v2' && correlationId !== undefined) res.setHeader('X-Request-Id', correlationId);

  const resolved = resolve(method, url.pathname);
  const collected = await collectBody(req, record, resolved.route?.sink === true);
  if (!collected.complete || res.destroyed) return;
  const ctx: Ctx = { req, res, url, params: resolved.params, body: collected.body, sha256: collected.sha256, record, server };
  if (await applyHooks(ctx, family)) return;

  if (!resolved.handler) {
    const notFound = family === 'v2' ? 'Resource not found.' : 'the server could not find the requested resource';
    return familyError(res, family, resolved.route && family === 'k8s' ? 405 : 404, notFound);
  }
  try {
    await resolved.handler(ctx);
  } catch (err) {
    if (res.headersSent) res.destroy();
    else familyError(res, family, 500, `Internal error in the fake: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export async function startFakeCodeEngine(opts: FakeCodeEngineOptions = {}): Promise<FakeCodeEngine> {
  const context: ServerContext = {
    state: new State(),
    requests: [],
    timers: new Set(),
    baseUrl: '',
    kubeconfig: opts.kubeconfig,
  };
  const server = http.createServer((req, res) => {
    handleRequest(context, req, res).catch(() => res.destroy());
  });
  server.requestTimeout = 0;
  server.on('clientError', (_err, socket) => socket.destroy());
  const port = await listenOnLoopback(server);
  context.baseUrl = `http://127.0.0.1:${port}`;

  return {
    url: context.baseUrl,
    port,
    requests: context.requests,
    reset(): void {
      context.state.clear();
      context.requests.splice(0);
    },
    close(): Promise<void> {
      for (const timer of context.timers) clearTimeout(timer);
      context.timers.clear();
      return closeNow(server);
    },
  };
}
