import { loadValidatedDocument } from '../schemas';

/** schemas/redaction-rules.json */
export interface RedactionRulesDoc {
  replacement: string;
  sensitiveKeyPattern: string;
  keyExceptions: string[];
  sensitiveEnvNamePattern: string;
  envArrayKeys: string[];
  envNameKeys: string[];
  envValueKeys: string[];
  secretDataKeys: string[];
  secretObjectMarkers: Array<{ key: string; prefix?: string; oneOf?: string[]; absentKey?: string }>;
  sensitiveValuePatterns: string[];
  embeddedObjectKeys: string[];
  maxEmbeddedDepth: number;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(value: Json): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Replace an own property. JSON.parse makes "__proto__" an own property, but assigning to obj.__proto__ would
 * set the prototype instead and leave the original value in place, to be serialized: define it instead.
 */
function put(obj: JsonObject, key: string, value: Json): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

/** JSON's insignificant whitespace: space, tab, line feed, carriage return. */
function isJsonSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

/**
 * A string that may hold a whole object or array serialized as JSON: its first and last characters other
 * than whitespace say so. Looked at for every string of every body, so it allocates nothing.
 */
function looksLikeJsonContainer(text: string): boolean {
  let start = 0;
  let end = text.length - 1;
  while (start <= end && isJsonSpace(text.charCodeAt(start))) start++;
  while (end > start && isJsonSpace(text.charCodeAt(end))) end--;
  if (end <= start) return false;
  const first = text.charCodeAt(start);
  const last = text.charCodeAt(end);
  return (first === 0x7b && last === 0x7d) || (first === 0x5b && last === 0x5d);
}

function isPatchOp(value: Json): boolean {
  return isObject(value) && typeof value.op === 'string' && typeof value.path === 'string';
}

/**
 * Removes credentials from a parsed JSON body, in place. Applied to every request and response body before
 * it can reach an event: secret data (keys kept, values replaced), values under credential-looking keys,
 * environment variables with credential-looking names, JSON Patch operations touching those, and any string
 * that looks like a token or a private key wherever it is.
 */
export class Redactor {
  readonly replacement: string;
  private readonly sensitiveKey: RegExp;
  private readonly keyExceptions: Set<string>;
  private readonly sensitiveEnvName: RegExp;
  private readonly envArrayKeys: Set<string>;
  private readonly envNameKeys: string[];
  private readonly envValueKeys: string[];
  private readonly secretDataKeys: Set<string>;
  private readonly markers: Array<{ key: string; prefix?: string; oneOf?: ReadonlySet<string>; absentKey?: string }>;
  private readonly sensitiveValue: RegExp;
  /** The same, global: every occurrence in a text (replace() resets it, so one instance serves every call). */
  private readonly sensitiveValueAll: RegExp;
  private readonly secretPatchPath: RegExp;
  private readonly embeddedKeys: ReadonlySet<string>;
  private readonly maxEmbeddedDepth: number;
  /** Levels of embedded objects being redacted right now (redaction is synchronous, so one counter serves). */
  private embedDepth = 0;

  constructor(rules: RedactionRulesDoc) {
    this.replacement = rules.replacement;
    this.sensitiveKey = new RegExp(rules.sensitiveKeyPattern, 'i');
    this.keyExceptions = new Set(rules.keyExceptions);
    this.sensitiveEnvName = new RegExp(rules.sensitiveEnvNamePattern, 'i');
    this.envArrayKeys = new Set(rules.envArrayKeys);
    this.envNameKeys = rules.envNameKeys;
    this.envValueKeys = rules.envValueKeys;
    this.secretDataKeys = new Set(rules.secretDataKeys);
    this.markers = rules.secretObjectMarkers.map((m) => ({ ...m, oneOf: m.oneOf ? new Set(m.oneOf) : undefined }));
    this.sensitiveValue = new RegExp(rules.sensitiveValuePatterns.join('|'));
    this.sensitiveValueAll = new RegExp(this.sensitiveValue.source, 'g');
    const dataKeys = rules.secretDataKeys.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
    this.secretPatchPath = new RegExp(`(^|/)(${dataKeys})(/|$)`);
    this.embeddedKeys = new Set(rules.embeddedObjectKeys);
    this.maxEmbeddedDepth = rules.maxEmbeddedDepth;
  }

  isSensitiveKey(key: string): boolean {
    return this.sensitiveKey.test(key) && !this.keyExceptions.has(key);
  }

  /** Redact a whole body. `secretBearing`: the body belongs to a secret or kubeconfig operation. */
  redactBody(body: Json, secretBearing: boolean): Json {
    if (
      Array.isArray(body) &&
      body.length > 0 &&
      body.every((op) => isObject(op) && typeof op.op === 'string' && typeof op.path === 'string')
    ) {
      return this.redactJsonPatch(body as JsonObject[], secretBearing);
    }
    return this.redactValue(body, secretBearing);
  }

  private redactValue(value: Json, inSecret: boolean): Json {
    if (typeof value === 'string') return this.redactString(value, inSecret, false);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = this.redactValue(value[i] as Json, inSecret);
      return value;
    }
    if (!isObject(value)) return value;
    // A JSON Patch operation wherever it is (a patch body, or a patch echoed inside a response).
    if (isPatchOp(value)) return this.redactPatchOp(value, inSecret);
    const secret = inSecret || this.isSecretObject(value);
    for (const key of Object.keys(value)) {
      const child = value[key] as Json;
      if (secret && this.secretDataKeys.has(key)) put(value, key, this.redactAll(child));
      else if (this.isSensitiveKey(key)) put(value, key, this.redactAll(child));
      else if (this.envArrayKeys.has(key) && Array.isArray(child)) put(value, key, this.redactEnv(child, secret));
      else if (typeof child === 'string' && this.embeddedKeys.has(key)) put(value, key, this.redactString(child, secret, true));
      else put(value, key, this.redactValue(child, secret));
    }
    return value;
  }

  /**
   * A string value. One that holds a whole object as JSON (kubectl's last-applied-configuration annotation holds
   * the applied manifest, a Secret's data included) is parsed and redacted by the same rules, so an auditor
   * still reads what was applied; it is serialized again only when something was redacted, so any other such
   * string (a config file in a config map) keeps its exact text. Under an `embeddedObjectKeys` key a value that
   * is not JSON is replaced whole, as is anything nested deeper than `maxEmbeddedDepth`.
   */
  private redactString(text: string, inSecret: boolean, mustBeObject: boolean): Json {
    let kept = text;
    if (mustBeObject || looksLikeJsonContainer(text)) {
      const embedded = this.redactEmbedded(text, inSecret);
      if (embedded !== undefined) kept = embedded;
      else if (mustBeObject) return this.replacement;
    }
    // What redaction inside cannot reach (a token used as a key) still replaces the whole string.
    return this.sensitiveValue.test(kept) ? this.replacement : kept;
  }

  /** The redacted text of a JSON object or array held in a string, or undefined when it is not one. */
  private redactEmbedded(text: string, inSecret: boolean): string | undefined {
    let parsed: Json;
    try {
      parsed = JSON.parse(text) as Json;
    } catch {
      return undefined;
    }
    if (parsed === null || typeof parsed !== 'object') return undefined;
    if (this.embedDepth >= this.maxEmbeddedDepth) return this.replacement;
    const before = JSON.stringify(parsed);
    this.embedDepth++;
    try {
      const after = JSON.stringify(this.redactBody(parsed, inSecret));
      if (after === before) return text;
      return text.endsWith('\n') ? `${after}\n` : after;
    } finally {
      this.embedDepth--;
    }
  }

  /** Every scalar replaced; object keys kept so an auditor still sees which entries changed. */
  private redactAll(value: Json): Json {
    if (isObject(value)) {
      for (const key of Object.keys(value)) put(value, key, this.redactAll(value[key] as Json));
      return value;
    }
    if (Array.isArray(value)) return value.map((v) => this.redactAll(v));
    return value === null ? null : this.replacement;
  }

  private isSecretObject(value: JsonObject): boolean {
    for (const { key, prefix, oneOf, absentKey } of this.markers) {
      if (absentKey !== undefined && absentKey in value) continue;
      const v = value[key];
      if (typeof v === 'string' && ((prefix !== undefined && v.startsWith(prefix)) || oneOf?.has(v))) return true;
    }
    return false;
  }

  /** Environment variables: the value of one whose name looks like a credential is replaced; the rest as usual. */
  private redactEnv(vars: Json[], inSecret: boolean): Json[] {
    return vars.map((item) => this.redactEnvEntry(item, inSecret));
  }

  private redactEnvEntry(item: Json, inSecret: boolean): Json {
    if (!isObject(item)) return this.redactValue(item, inSecret);
    const name = this.envNameKeys.map((k) => item[k]).find((v): v is string => typeof v === 'string');
    if (name !== undefined && (this.sensitiveEnvName.test(name) || this.isSensitiveKey(name))) {
      for (const key of this.envValueKeys) if (Object.hasOwn(item, key)) put(item, key, this.redactAll(item[key] as Json));
    }
    return this.redactValue(item, inSecret);
  }

  /**
   * JSON Patch: an operation's value is judged by where it goes. Below a secret's data or a credential-named key
   * it is replaced whole; into an environment list it is an environment variable; elsewhere, redacted as usual.
   */
  private redactJsonPatch(ops: JsonObject[], secretBearing: boolean): Json {
    for (const op of ops) this.redactPatchOp(op, secretBearing);
    return ops;
  }

  private redactPatchOp(op: JsonObject, secretBearing: boolean): JsonObject {
    if (!('value' in op)) return op;
    const path = op.path as string;
    const segments = path
      .split('/')
      .slice(1)
      .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
    const value = op.value as Json;
    if ((secretBearing && this.secretPatchPath.test(path)) || segments.some((seg) => this.isSensitiveKey(seg))) {
      op.value = this.redactAll(value);
      return op;
    }
    const envAt = segments.findIndex((seg) => this.envArrayKeys.has(seg));
    if (envAt >= 0 && envAt >= segments.length - 2) {
      // .../env (a whole list) or .../env/3, .../env/- (one entry)
      op.value =
        Array.isArray(value) && envAt === segments.length - 1
          ? this.redactEnv(value, secretBearing)
          : this.redactEnvEntry(value, secretBearing);
      return op;
    }
    op.value = this.redactValue(value, secretBearing);
    return op;
  }

  /** A free-text string (an error message) with any token-looking substring removed. */
  redactText(text: string): string {
    return this.sensitiveValue.test(text) ? text.replace(this.sensitiveValueAll, this.replacement) : text;
  }
}

export function loadRedactor(): Redactor {
  return new Redactor(
    loadValidatedDocument<RedactionRulesDoc>('redaction-rules.json', 'redaction-rules.schema.json', 'ERR_SCHEMA_INVALID'),
  );
}

export type { Json, JsonObject };
