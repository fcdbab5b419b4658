import fc from 'fast-check';
import { GatewayError } from '../../src/errors';
import { MAX_PATH_LENGTH, parseRequestTarget, type RequestTarget } from '../../src/http/request-target';

function badRequestOf(url: string): GatewayError {
  let caught: unknown;
  try {
    parseRequestTarget(url);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(GatewayError);
  const error = caught as GatewayError;
  expect(error.code).toBe('ERR_BAD_REQUEST');
  return error;
}

function pathOf(url: string): string {
  return parseRequestTarget(url).path;
}

describe('parseRequestTarget: examples', () => {
  test('a plain path passes unchanged, with its segments and no query', () => {
    expect(parseRequestTarget('/v2/projects/abc/apps')).toEqual<RequestTarget>({
      path: '/v2/projects/abc/apps',
      segments: ['v2', 'projects', 'abc', 'apps'],
      search: '',
    });
  });

  test('the root has no segments', () => {
    expect(parseRequestTarget('/')).toEqual<RequestTarget>({ path: '/', segments: [], search: '' });
    expect(parseRequestTarget('/?version=2024-01-01')).toEqual<RequestTarget>({ path: '/', segments: [], search: '?version=2024-01-01' });
  });

  test('duplicate slashes collapse', () => {
    expect(parseRequestTarget('//v2///projects//x')).toEqual<RequestTarget>({
      path: '/v2/projects/x',
      segments: ['v2', 'projects', 'x'],
      search: '',
    });
    expect(pathOf('//')).toBe('/');
  });

  test('a trailing slash is removed', () => {
    expect(pathOf('/v2/projects/')).toBe('/v2/projects');
    expect(parseRequestTarget('/v2/projects/').segments).toEqual(['v2', 'projects']);
    expect(pathOf('/v2/projects//?limit=1')).toBe('/v2/projects');
  });

  test('"." segments are dropped and ".." climbs one level', () => {
    expect(pathOf('/v2/./projects/.')).toBe('/v2/projects');
    expect(pathOf('/v2/projects/x/../y')).toBe('/v2/projects/y');
    expect(pathOf('/v2/projects/x/..')).toBe('/v2/projects');
    expect(pathOf('/v2/a/b/../../projects')).toBe('/v2/projects');
    expect(pathOf('/v2/..')).toBe('/');
  });

  test('segments that merely contain dots are kept', () => {
    expect(pathOf('/v2/.../a..b/.hidden/x.')).toBe('/v2/.../a..b/.hidden/x.');
  });

  test.each(['/..', '/../v2', '/v2/../..', '/v2/../../projects', '/./..', '/%2e%2e', '/a/%2E%2E/%2e%2E'])(
    '".." above the root is a 400 bad request: %s',
    (url) => {
      const error = badRequestOf(url);
      expect(error.message).toMatch(/root/);
    },
  );

  test.each(['%2F', '%2f', '%5C', '%5c', '%00', '%0a', '%0A', '%0d', '%1f', '%7f'])(
    'an escape hiding a separator or control character is refused: %s',
    (escape) => {
      badRequestOf(`/v2/projects/a${escape}b`);
      badRequestOf(`/v2/${escape}`);
    },
  );

  test('a raw backslash is refused', () => {
    badRequestOf('/v2\\projects');
    badRequestOf('/v2/projects/a\\b');
  });

  test.each(['/v2/%', '/v2/%2', '/v2/%zz', '/v2/a%g1', '/v2/%%41'])('a malformed escape is refused: %s', (url) => {
    const error = badRequestOf(url);
    expect(error.message).toMatch(/percent/);
  });

  test('%2e and %2e%2e count as dot segments', () => {
    expect(pathOf('/v2/%2e/projects')).toBe('/v2/projects');
    expect(pathOf('/v2/%2E/projects')).toBe('/v2/projects');
    expect(pathOf('/v2/projects/x/%2e%2e/y')).toBe('/v2/projects/y');
    expect(pathOf('/v2/projects/x/.%2e/y')).toBe('/v2/projects/y');
    expect(pathOf('/v2/projects/x/%2E./y')).toBe('/v2/projects/y');
  });

  test('escapes of unreserved characters are decoded', () => {
    expect(parseRequestTarget('/v2/projects/p/%61pps')).toEqual<RequestTarget>({
      path: '/v2/projects/p/apps',
      segments: ['v2', 'projects', 'p', 'apps'],
      search: '',
    });
    expect(pathOf('/%41%5a%30%2D%5F%7E%2E')).toBe('/AZ0-_~.');
  });

  test('other escapes are kept but upper-cased', () => {
    expect(pathOf('/v2/a%3ab')).toBe('/v2/a%3Ab');
    expect(pathOf('/v2/%c3%a9t%c3%a9')).toBe('/v2/%C3%A9t%C3%A9');
    expect(pathOf('/v2/a%20b')).toBe('/v2/a%20b');
    expect(pathOf('/v2/100%25')).toBe('/v2/100%25');
    expect(pathOf('/v2/%3F%23')).toBe('/v2/%3F%23');
  });

  test('the query string is kept verbatim, even when it has slashes, dots and escapes', () => {
    const target = parseRequestTarget('/v2/projects/../projects/?a=%2f..//x&b=%zz&c=/./');
    expect(target.path).toBe('/v2/projects');
    expect(target.search).toBe('?a=%2f..//x&b=%zz&c=/./');
    expect(parseRequestTarget('/v2?').search).toBe('?');
    expect(parseRequestTarget('/v2?x?y').search).toBe('?x?y');
  });

  test.each(['http://x/', 'https://api.us-south.codeengine.cloud.ibm.com/v2/projects', '*', '', 'v2/projects', '?a=1'])(
    'a target that is not origin-form is refused: %j',
    (url) => {
      badRequestOf(url);
    },
  );

  test.each(['/v2/a b', '/v2/a\tb', '/v2/a\nb', '/v2/a\u0000b', '/v2?x=a b', '/v2/a\u007fb'])(
    'raw whitespace or control characters are refused: %j',
    (url) => {
      badRequestOf(url);
    },
  );

  test('over-long targets are refused, the limit itself is accepted', () => {
    const atLimit = `/${'a'.repeat(MAX_PATH_LENGTH - 1)}`;
    expect(parseRequestTarget(atLimit).path).toBe(atLimit);
    badRequestOf(`/${'a'.repeat(MAX_PATH_LENGTH)}`);
    badRequestOf(`/v2/${'b/'.repeat(MAX_PATH_LENGTH)}`);
    const error = badRequestOf(`/v2?${'q'.repeat(MAX_PATH_LENGTH)}`);
    expect(error.message).toMatch(String(MAX_PATH_LENGTH));
  });
});

// Characters a raw request target is built from: enough dots, slashes and percent signs to reach every branch.
const targetChar = fc.constantFrom(
  'a',
  'b',
  'Z',
  '0',
  '-',
  '_',
  '~',
  '.',
  '.',
  '/',
  '/',
  '/',
  '%',
  '2',
  'e',
  'E',
  'f',
  'F',
  '3',
  'A',
  '%2e',
  '%2E',
  '%2e%2e',
  '..',
  '%41',
  '%3a',
  '%c3',
  '%25',
  '%7e',
  ':',
  '@',
  '!',
  '\\',
  '?',
  ' ',
  'é',
);
const rawTarget = fc.array(targetChar, { maxLength: 40 }).map((parts) => `/${parts.join('')}`);
// Mostly well-formed targets: segments of the kinds above joined with slashes.
const segmentArb = fc.oneof(
  fc.constantFrom('', '.', '..', '%2e', '%2E%2e', 'v2', 'projects', 'apps', '%61pps', 'a%3ab', '%C3%A9', '...', '.x', 'x.'),
  fc.stringMatching(/^[A-Za-z0-9._~-]{1,6}$/),
);
const structuredTarget = fc
  .tuple(
    fc.array(segmentArb, { maxLength: 10 }),
    fc.boolean(),
    fc.option(fc.stringMatching(/^[A-Za-z0-9=&%/.]{0,10}$/), { nil: undefined }),
  )
  .map(([segments, trailing, query]) => `/${segments.join('/')}${trailing ? '/' : ''}${query === undefined ? '' : `?${query}`}`);
const anyTarget = fc.oneof(rawTarget, structuredTarget);

function tryParse(url: string): RequestTarget | GatewayError {
  try {
    return parseRequestTarget(url);
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
}

describe('parseRequestTarget: properties', () => {
  test('the normalised path is canonical', () => {
    fc.assert(
      fc.property(anyTarget, (url) => {
        const result = tryParse(url);
        if (result instanceof GatewayError) return;
        const { path, segments } = result;
        expect(path.startsWith('/')).toBe(true);
        expect(path).not.toContain('//');
        expect(path === '/' || !path.endsWith('/')).toBe(true);
        for (const segment of path.split('/').slice(1)) {
          expect(segment).not.toBe('.');
          expect(segment).not.toBe('..');
        }
        expect(segments.join('/')).toBe(path.slice(1));
        expect(segments).not.toContain('');
      }),
      { numRuns: 1000 },
    );
  });

  test('normalising twice changes nothing (idempotence)', () => {
    fc.assert(
      fc.property(anyTarget, (url) => {
        const first = tryParse(url);
        if (first instanceof GatewayError) return;
        const again = parseRequestTarget(first.path + first.search);
        expect(again).toEqual(first);
      }),
      { numRuns: 1000 },
    );
  });

  test('the query string is always forwarded verbatim', () => {
    fc.assert(
      fc.property(structuredTarget, fc.stringMatching(/^[!-~]{0,20}$/), (url, query) => {
        const path = url.includes('?') ? url.slice(0, url.indexOf('?')) : url;
        const result = tryParse(`${path}?${query}`);
        if (result instanceof GatewayError) return;
        expect(result.search).toBe(`?${query}`);
      }),
      { numRuns: 500 },
    );
  });

  test('never throws anything but a 400 GatewayError, whatever the input', () => {
    fc.assert(
      fc.property(fc.oneof(anyTarget, fc.string({ maxLength: 60 }), fc.string({ unit: 'binary-ascii', maxLength: 60 })), (url) => {
        const result = tryParse(url);
        if (result instanceof GatewayError) expect(result.code).toBe('ERR_BAD_REQUEST');
        else expect(typeof result.path).toBe('string');
      }),
      { numRuns: 500 },
    );
  });
});
