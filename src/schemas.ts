import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { GatewayError, type ErrorCode } from './errors';

/**
 * `schemas/` sits at the project root, beside `src/` and `dist/` (and above `build/src/` for the dev tools):
 * the nearest one up from this file.
 */
function findSchemasDir(): string {
  for (let dir = __dirname, i = 0; i < 4; i++, dir = path.dirname(dir)) {
    const candidate = path.join(dir, '..', 'schemas');
    if (existsSync(path.join(candidate, 'config.schema.json'))) return path.resolve(candidate);
  }
  return path.resolve(__dirname, '..', 'schemas');
}

export const SCHEMAS_DIR = findSchemasDir();

/** Start-up only: reads a JSON document from `schemas/`. */
export function readSchemaFile(name: string): unknown {
  const file = path.join(SCHEMAS_DIR, name);
  return JSON.parse(readFileSync(file, 'utf8')) as unknown;
}

export function createAjv(options: { coerceTypes?: boolean; useDefaults?: boolean } = {}): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, ...options });
  addFormats(ajv);
  // Annotations for people and for error messages; not validation keywords.
  ajv.addKeyword({ keyword: 'x-accepts', schemaType: 'string' });
  ajv.addKeyword({ keyword: 'x-name', schemaType: 'string' });
  ajv.addKeyword({ keyword: 'x-secret', schemaType: 'boolean' });
  return ajv;
}

export function compileSchemaFile<T>(ajv: Ajv, name: string): ValidateFunction<T> {
  return ajv.compile<T>(readSchemaFile(name) as object);
}

export function formatAjvErrors(errors: ErrorObject[] | null | undefined): string {
  if (!errors || errors.length === 0) return 'unknown validation error';
  return errors
    .map(
      (e) =>
        `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}${e.params && 'allowedValues' in e.params ? ` (${(e.params.allowedValues as unknown[]).join(', ')})` : ''}`,
    )
    .join('; ');
}

/** Validate a data document from `schemas/` against its own schema; throws with every problem named. */
export function loadValidatedDocument<T>(documentName: string, schemaName: string, code: ErrorCode): T {
  const ajv = createAjv();
  const validate = compileSchemaFile<T>(ajv, schemaName);
  const doc = readSchemaFile(documentName);
  if (!validate(doc)) {
    throw new GatewayError(code, `schemas/${documentName} does not match schemas/${schemaName}: ${formatAjvErrors(validate.errors)}`);
  }
  return doc;
}
