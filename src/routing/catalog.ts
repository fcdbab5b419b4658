import { GatewayError } from '../errors';
import { loadValidatedDocument } from '../schemas';
import type { ActionEdition, NameSource, RouteMatch, RouteOperation, Severity, UpstreamName } from '../types';
import { isParamSegment, PathMatcher, patternSegments } from './path-matcher';

/** schemas/route-catalog.json as written (see schemas/route-catalog.schema.json). */
interface MethodEntryDoc {
  verb: string;
  operation?: string;
  targetName?: NameSource[];
  project?: NameSource[];
  severity?: Severity;
  actions?: Partial<Record<ActionEdition, string>>;
}

interface RouteDoc {
  path: string;
  upstream: UpstreamName;
  objectType: string;
  methodSet?: string;
  methods?: Record<string, MethodEntryDoc>;
  targetName?: NameSource[];
  project?: NameSource[];
  projectIsNamespace?: boolean;
  secretBearing?: boolean;
  omitResponse?: boolean;
  generic?: boolean;
  severity?: Record<string, Severity>;
}

interface EditionDoc {
  objectNames: Record<string, string>;
  verbNames: Record<string, string>;
  /** Verb names of one object type, ahead of verbNames (IBM's revised page lists projects as .read). */
  objectVerbNames?: Record<string, Record<string, string>>;
}

export interface CatalogDoc {
  service: string;
  serviceDisplayName: string;
  editions: Record<ActionEdition, EditionDoc>;
  severityByVerb: Record<string, Severity>;
  methodSets: Record<string, Record<string, MethodEntryDoc>>;
  routes: RouteDoc[];
}

/** One catalog route, compiled: operations per method; `{param}` object types are resolved per request. */
interface CompiledRoute {
  doc: RouteDoc;
  paramNames: string[];
  methods: Map<string, MethodEntryDoc>;
  /** Index into paramNames when objectType is a `{param}` template. */
  objectTypeParam: number;
  /** Operations whose object type is fixed, built once. */
  fixed: Map<string, RouteOperation>;
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);
const MAX_OBJECT_TYPE_LENGTH = 48;
const GENERIC_CACHE_LIMIT = 4096;

/**
 * A lookup in a data map by a name that may come from a request: only the map's own entries, so that a path
 * segment such as "constructor" or "__proto__" never finds something inherited from Object.prototype.
 */
function own<T>(map: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

/** Verb for a method that neither the route nor its method set names (HEAD, OPTIONS, unknown verbs). */
export function verbForMethod(method: string): string {
  switch (method) {
    case 'GET':
    case 'HEAD':
      return 'read';
    case 'POST':
      return 'create';
    case 'PUT':
    case 'PATCH':
      return 'update';
    case 'DELETE':
      return 'delete';
    default:
      return sanitizeIdentifier(method) || 'unknown';
  }
}

/** Action names may only contain [a-z0-9]: whatever a caller puts in a path cannot shape an action. */
export function sanitizeIdentifier(value: string): string {
  return value
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, MAX_OBJECT_TYPE_LENGTH);
}

export class RouteCatalog {
  readonly service: string;
  readonly serviceDisplayName: string;
  private readonly matcher = new PathMatcher<CompiledRoute>();
  private readonly genericCache = new Map<string, RouteOperation>();
  private readonly routes: CompiledRoute[] = [];

  constructor(
    private readonly doc: CatalogDoc,
    private readonly edition: ActionEdition,
  ) {
    this.service = doc.service;
    this.serviceDisplayName = doc.serviceDisplayName;
    for (const route of doc.routes) this.add(route);
  }

  private add(route: RouteDoc): void {
    const segments = patternSegments(route.path);
    const paramNames = segments.filter(isParamSegment).map((s) => s.slice(1, -1));
    const methods = new Map<string, MethodEntryDoc>();
    if (route.methodSet !== undefined) {
      const set = own(this.doc.methodSets, route.methodSet);
      if (!set) throw new GatewayError('ERR_CATALOG_INVALID', `Route ${route.path} names unknown methodSet "${route.methodSet}".`);
      for (const [m, entry] of Object.entries(set)) methods.set(m, entry);
    }
    for (const [m, entry] of Object.entries(route.methods ?? {})) methods.set(m, entry);

    let objectTypeParam = -1;
    if (isParamSegment(route.objectType)) {
      objectTypeParam = paramNames.indexOf(route.objectType.slice(1, -1));
      if (objectTypeParam < 0)
        throw new GatewayError(
          'ERR_CATALOG_INVALID',
          `Route ${route.path}: objectType ${route.objectType} is not a parameter of the path.`,
        );
    }
    const compiled: CompiledRoute = { doc: route, paramNames, methods, objectTypeParam, fixed: new Map() };
    for (const [method, entry] of methods) {
      for (const source of [...(entry.targetName ?? route.targetName ?? []), ...(entry.project ?? route.project ?? [])]) {
        if (source.startsWith('param:') && !paramNames.includes(source.slice(6))) {
          throw new GatewayError('ERR_CATALOG_INVALID', `Route ${method} ${route.path}: ${source} is not a parameter of the path.`);
        }
      }
      if (objectTypeParam < 0) compiled.fixed.set(method, this.operation(route, method, entry, route.objectType));
    }
    if (!this.matcher.insert(segments, compiled)) {
      throw new GatewayError('ERR_CATALOG_INVALID', `Route ${route.path} appears twice in the catalog.`);
    }
    this.routes.push(compiled);
  }

  /** Action name for an object type and verb in this catalog's edition. */
  actionName(objectType: string, verb: string, edition: ActionEdition = this.edition): string {
    const e = this.doc.editions[edition];
    const objectVerbs = e.objectVerbNames && own(e.objectVerbNames, objectType);
    const verbName = (objectVerbs && own(objectVerbs, verb)) ?? own(e.verbNames, verb) ?? verb;
    return `${this.service}.${own(e.objectNames, objectType) ?? objectType}.${verbName}`;
  }

  private operation(route: RouteDoc, method: string, entry: MethodEntryDoc, objectType: string): RouteOperation {
    const verb = entry.verb;
    const project = entry.project ?? route.project ?? [];
    const defaultName: readonly NameSource[] =
      verb === 'create' ? ['body:/name', 'response:/name'] : route.path.includes('{name}') ? ['param:name'] : project;
    return {
      method,
      verb,
      objectType,
      actions: {
        '2020': entry.actions?.['2020'] ?? this.actionName(objectType, verb, '2020'),
        current: entry.actions?.current ?? this.actionName(objectType, verb, 'current'),
      },
      targetName: entry.targetName ?? (verb === 'create' ? undefined : route.targetName) ?? defaultName,
      project,
      projectIsNamespace: route.projectIsNamespace ?? false,
      severity: entry.severity ?? (route.severity && own(route.severity, verb)) ?? own(this.doc.severityByVerb, verb) ?? 'warning',
      recordsRequestBody: BODY_METHODS.has(method),
      secretBearing: route.secretBearing ?? false,
      omitResponse: route.omitResponse ?? false,
      operationId: entry.operation,
      generic: route.generic ?? false,
    };
  }

  /**
   * Finds the operation for a method and a normalised path (segments without the leading slash). Always returns
   * a match: a path the catalog does not know gets a generic action derived from the path and method, so nothing
   * passes unaudited.
   */
  match(method: string, segments: readonly string[]): RouteMatch {
    const found = this.matcher.match(segments);
    if (found) {
      const route = found.value;
      const params: Record<string, string> = {};
      for (let i = 0; i < route.paramNames.length; i++)
        params[route.paramNames[i] as string] = decodeSegment(found.paramValues[i] as string);
      const operation = this.resolveOperation(route, method, params);
      return { operation, upstream: route.doc.upstream, params };
    }
    return this.fallback(method, segments);
  }

  private resolveOperation(route: CompiledRoute, method: string, params: Record<string, string>): RouteOperation {
    const lookup = method === 'HEAD' && !route.methods.has('HEAD') ? 'GET' : method;
    if (route.objectTypeParam < 0) {
      const fixed = route.fixed.get(lookup);
      if (fixed) return method === lookup ? fixed : { ...fixed, method };
      return this.cached(`${route.doc.path}|${method}`, () =>
        this.operation(route.doc, method, { verb: verbForMethod(method) }, route.doc.objectType),
      );
    }
    const objectType = sanitizeIdentifier(params[route.paramNames[route.objectTypeParam] as string] ?? '') || 'unknown';
    const entry = route.methods.get(lookup) ?? { verb: verbForMethod(method) };
    return this.cached(`${route.doc.path}|${method}|${objectType}`, () => ({
      ...this.operation(route.doc, method, entry, objectType),
      method,
    }));
  }

  private fallback(method: string, segments: readonly string[]): RouteMatch {
    const first = segments[0] ?? '';
    const upstream: UpstreamName = first === 'v2' ? 'api' : 'kube';
    const objectType = sanitizeIdentifier(first === 'v2' ? (segments[1] ?? 'api') : first) || 'root';
    const operation = this.cached(`*|${method}|${objectType}`, () =>
      this.operation(
        { path: '', upstream, objectType, generic: true, project: [], targetName: [] },
        method,
        { verb: verbForMethod(method) },
        objectType,
      ),
    );
    return { operation, upstream, params: {} };
  }

  private cached(key: string, build: () => RouteOperation): RouteOperation {
    let op = this.genericCache.get(key);
    if (!op) {
      // Bounded: callers choose the path, so the cache must not grow with them.
      if (this.genericCache.size >= GENERIC_CACHE_LIMIT) this.genericCache.clear();
      op = build();
      this.genericCache.set(key, op);
    }
    return op;
  }

  /** Every route with its compiled operations (for documentation and tests). */
  describe(): Array<{ path: string; upstream: UpstreamName; operations: RouteOperation[] }> {
    return this.routes.map((route) => ({ path: route.doc.path, upstream: route.doc.upstream, operations: [...route.fixed.values()] }));
  }
}

function decodeSegment(segment: string): string {
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export function loadCatalogDocument(): CatalogDoc {
  return loadValidatedDocument<CatalogDoc>('route-catalog.json', 'route-catalog.schema.json', 'ERR_CATALOG_INVALID');
}

export function loadCatalog(edition: ActionEdition): RouteCatalog {
  return new RouteCatalog(loadCatalogDocument(), edition);
}
