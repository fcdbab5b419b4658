import fc from 'fast-check';
import { isParamSegment, PathMatcher, patternSegments, type PatternMatch } from '../../src/routing/path-matcher';

function matcherOf(patterns: readonly string[]): PathMatcher<string> {
  const matcher = new PathMatcher<string>();
  for (const pattern of patterns) expect(matcher.insert(patternSegments(pattern), pattern)).toBe(true);
  return matcher;
}

function matchPath(matcher: PathMatcher<string>, path: string): PatternMatch<string> | undefined {
  return matcher.match(path.split('/').slice(1));
}

describe('patternSegments / isParamSegment', () => {
  test('splits a pattern after its leading slash', () => {
    expect(patternSegments('/v2/projects/{project_id}/apps')).toEqual(['v2', 'projects', '{project_id}', 'apps']);
    expect(patternSegments('/')).toEqual(['']);
  });

  test('a parameter is a non-empty name in braces', () => {
    expect(isParamSegment('{name}')).toBe(true);
    expect(isParamSegment('{a}')).toBe(true);
    expect(isParamSegment('{}')).toBe(false);
    expect(isParamSegment('name')).toBe(false);
    expect(isParamSegment('{name')).toBe(false);
    expect(isParamSegment('name}')).toBe(false);
  });
});

describe('PathMatcher: examples', () => {
  const catalog = [
    '/v2/projects',
    '/v2/projects/{id}',
    '/v2/projects/{project_id}/apps',
    '/v2/projects/{project_id}/apps/{name}',
    '/v2/projects/{project_id}/apps/{app_name}/revisions/{name}',
    '/v2/projects/{project_id}/egress_ips',
    '/v2/function_runtimes',
  ];

  test('matches literal paths and returns the inserted value', () => {
    const matcher = matcherOf(catalog);
    expect(matchPath(matcher, '/v2/projects')).toEqual({ value: '/v2/projects', paramValues: [] });
    expect(matchPath(matcher, '/v2/function_runtimes')).toEqual({ value: '/v2/function_runtimes', paramValues: [] });
  });

  test('parameter values come back in pattern order', () => {
    const matcher = matcherOf(catalog);
    expect(matchPath(matcher, '/v2/projects/p-1/apps/web/revisions/web-00001')).toEqual({
      value: '/v2/projects/{project_id}/apps/{app_name}/revisions/{name}',
      paramValues: ['p-1', 'web', 'web-00001'],
    });
    expect(matchPath(matcher, '/v2/projects/p-1/apps/web')).toEqual({
      value: '/v2/projects/{project_id}/apps/{name}',
      paramValues: ['p-1', 'web'],
    });
  });

  test('a literal beats a parameter at the same depth', () => {
    const matcher = matcherOf(['/v2/projects/{id}/{sub}', '/v2/projects/{id}/egress_ips', '/a/{x}', '/a/b']);
    expect(matchPath(matcher, '/v2/projects/p/egress_ips')).toEqual({ value: '/v2/projects/{id}/egress_ips', paramValues: ['p'] });
    expect(matchPath(matcher, '/v2/projects/p/other')).toEqual({ value: '/v2/projects/{id}/{sub}', paramValues: ['p', 'other'] });
    expect(matchPath(matcher, '/a/b')).toEqual({ value: '/a/b', paramValues: [] });
    expect(matchPath(matcher, '/a/c')).toEqual({ value: '/a/{x}', paramValues: ['c'] });
  });

  test('the insertion order does not decide the priority', () => {
    const forward = matcherOf(['/a/b', '/a/{x}']);
    const backward = matcherOf(['/a/{x}', '/a/b']);
    expect(matchPath(forward, '/a/b')?.value).toBe('/a/b');
    expect(matchPath(backward, '/a/b')?.value).toBe('/a/b');
  });

  test('a failed literal branch backtracks to the parameter branch', () => {
    const matcher = matcherOf(['/v2/projects/{id}/apps/{name}', '/v2/projects/egress/apps/{name}/x', '/v2/{a}/{b}/{c}']);
    // "egress" takes the literal branch, which has no 5-segment pattern: the parameter branch answers.
    expect(matchPath(matcher, '/v2/projects/egress/apps/web')).toEqual({
      value: '/v2/projects/{id}/apps/{name}',
      paramValues: ['egress', 'web'],
    });
    expect(matchPath(matcher, '/v2/projects/egress/apps/web/x')).toEqual({
      value: '/v2/projects/egress/apps/{name}/x',
      paramValues: ['web'],
    });
    // Literal "projects" fails deeper down ("jobs" is not "apps"): back to the parameter at depth 2.
    expect(matchPath(matcher, '/v2/projects/p/jobs')).toEqual({ value: '/v2/{a}/{b}/{c}', paramValues: ['projects', 'p', 'jobs'] });
  });

  test('parameter values pushed by a failed branch are not left behind', () => {
    const matcher = matcherOf(['/{a}/{b}/x', '/{c}/y/z']);
    expect(matchPath(matcher, '/1/y/z')).toEqual({ value: '/{c}/y/z', paramValues: ['1'] });
    expect(matchPath(matcher, '/1/2/x')).toEqual({ value: '/{a}/{b}/x', paramValues: ['1', '2'] });
  });

  test('a duplicate pattern is refused and the first value kept', () => {
    const matcher = new PathMatcher<string>();
    expect(matcher.insert(patternSegments('/v2/projects/{id}'), 'first')).toBe(true);
    expect(matcher.insert(patternSegments('/v2/projects/{id}'), 'second')).toBe(false);
    // Parameter names do not make patterns different.
    expect(matcher.insert(patternSegments('/v2/projects/{project_id}'), 'third')).toBe(false);
    expect(matchPath(matcher, '/v2/projects/p')).toEqual({ value: 'first', paramValues: ['p'] });
    expect(matcher.insert(patternSegments('/v2/projects'), 'prefix')).toBe(true);
  });

  test('an empty segment never matches a parameter', () => {
    const matcher = matcherOf(['/v2/projects/{id}', '/v2/projects/{id}/apps']);
    expect(matchPath(matcher, '/v2/projects/')).toBeUndefined();
    expect(matcher.match(['v2', 'projects', '', 'apps'])).toBeUndefined();
  });

  test('no match for shorter, longer or unknown paths', () => {
    const matcher = matcherOf(catalog);
    expect(matchPath(matcher, '/v2')).toBeUndefined();
    expect(matchPath(matcher, '/v2/projects/p/apps/a/revisions')).toBeUndefined();
    expect(matchPath(matcher, '/v2/projects/p/apps/a/revisions/r/x')).toBeUndefined();
    expect(matchPath(matcher, '/v1/projects')).toBeUndefined();
    expect(new PathMatcher<string>().match(['v2'])).toBeUndefined();
  });

  test('falsy values are still matches', () => {
    const matcher = new PathMatcher<number>();
    expect(matcher.insert(['zero'], 0)).toBe(true);
    expect(matcher.match(['zero'])).toEqual({ value: 0, paramValues: [] });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Property: the trie agrees with a naive reference matcher.

interface RefEntry {
  segments: readonly string[];
  value: number;
}

function shapeOf(segments: readonly string[]): string {
  return JSON.stringify(segments.map((s) => (isParamSegment(s) ? null : s)));
}

function refMatches(pattern: readonly string[], path: readonly string[]): boolean {
  if (pattern.length !== path.length) return false;
  return pattern.every((seg, i) => {
    const actual = path[i] as string;
    return isParamSegment(seg) ? actual.length > 0 : seg === actual;
  });
}

/** Negative when a has priority: at the first position where one is literal and the other a parameter, the literal wins. */
function comparePriority(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) {
    const pa = isParamSegment(a[i] as string);
    const pb = isParamSegment(b[i] as string);
    if (pa !== pb) return pa ? 1 : -1;
  }
  return 0;
}

function referenceMatch(entries: readonly RefEntry[], path: readonly string[]): PatternMatch<number> | undefined {
  let best: RefEntry | undefined;
  for (const entry of entries) {
    if (!refMatches(entry.segments, path)) continue;
    if (best === undefined || comparePriority(entry.segments, best.segments) < 0) best = entry;
  }
  if (!best) return undefined;
  const paramValues = best.segments.flatMap((seg, i) => (isParamSegment(seg) ? [path[i] as string] : []));
  return { value: best.value, paramValues };
}

const patternSegment = fc.constantFrom('a', 'b', 'c', '', '{}', '{x}', '{y}', '{id}');
const pathSegment = fc.constantFrom('a', 'b', 'c', 'd', '', '{}', '{x}');
const patternArb = fc.array(patternSegment, { minLength: 0, maxLength: 4 });
const pathArb = fc.array(pathSegment, { minLength: 0, maxLength: 4 });

describe('PathMatcher: agrees with a naive reference matcher', () => {
  test('random pattern sets and paths', () => {
    fc.assert(
      fc.property(fc.array(patternArb, { maxLength: 12 }), fc.array(pathArb, { maxLength: 12 }), (patterns, extraPaths) => {
        const matcher = new PathMatcher<number>();
        const entries: RefEntry[] = [];
        const shapes = new Set<string>();
        patterns.forEach((segments, value) => {
          const fresh = !shapes.has(shapeOf(segments));
          expect(matcher.insert(segments, value)).toBe(fresh);
          if (fresh) {
            shapes.add(shapeOf(segments));
            entries.push({ segments, value });
          }
        });
        // Paths derived from the patterns themselves (so that matches are frequent) plus random ones.
        const derived = patterns.map((segments) => segments.map((s) => (isParamSegment(s) ? 'b' : s)));
        for (const path of [...derived, ...extraPaths]) {
          expect(matcher.match(path)).toEqual(referenceMatch(entries, path));
        }
      }),
      { numRuns: 500 },
    );
  });
});
