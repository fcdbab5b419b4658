/**
 * Every action name the route catalog emits, in both editions, against IBM's own lists
 * (test/fixtures/ibm-action-names.json): a name is IBM's, or an extension written down there with its reason.
 * An IBM name no route emits, an object type IBM names used with a verb IBM does not list for it, or an
 * extension nothing uses any more all fail, so the table an auditor reads stays the table the gateway follows.
 */
import names from '../fixtures/ibm-action-names.json';
import { parseRequestTarget } from '../../src/http/request-target';
import { loadCatalog } from '../../src/routing/catalog';
import type { ActionEdition } from '../../src/types';

interface EditionNames {
  names: string[];
  extensionObjectTypes: Record<string, string>;
  extensionNames: Record<string, string>;
}

const EDITIONS: ActionEdition[] = ['2020', 'current'];

function objectOf(action: string): string {
  return action.slice(action.indexOf('.') + 1, action.lastIndexOf('.'));
}

/** Every name the catalog's own routes emit in an edition, with the calls that emit it. */
function emitted(edition: ActionEdition): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const route of loadCatalog(edition).describe()) {
    for (const op of route.operations) {
      const action = op.actions[edition];
      out.set(action, [...(out.get(action) ?? []), `${op.method} ${route.path}`]);
    }
  }
  return out;
}

describe.each(EDITIONS)('edition %s', (edition) => {
  const ibm = (names as unknown as Record<ActionEdition, EditionNames>)[edition];
  const ibmNames = new Set(ibm.names);
  const ibmObjects = new Set(ibm.names.map(objectOf));
  const actions = emitted(edition);

  test('IBM names are distinct, and the 2020 table has its 37', () => {
    expect(ibmNames.size).toBe(ibm.names.length);
    if (edition === '2020') expect(ibmNames.size).toBe(37);
  });

  test('every name the catalog emits is IBM’s or a written-down extension', () => {
    const unexplained = [...actions.entries()]
      .filter(([action]) => !ibmNames.has(action))
      .filter(([action]) => {
        const object = objectOf(action);
        if (ibmObjects.has(object)) return !Object.hasOwn(ibm.extensionNames, action);
        return !Object.hasOwn(ibm.extensionObjectTypes, object);
      })
      .map(([action, calls]) => `${action} <- ${calls.join(', ')}`);
    expect(unexplained).toEqual([]);
  });

  test('every IBM name is emitted by some route', () => {
    expect(ibm.names.filter((n) => !actions.has(n))).toEqual([]);
  });

  test('no extension is stale or contradicts IBM', () => {
    const objects = new Set([...actions.keys()].map(objectOf));
    expect(Object.keys(ibm.extensionObjectTypes).filter((o) => !objects.has(o) || ibmObjects.has(o))).toEqual([]);
    expect(Object.keys(ibm.extensionNames).filter((n) => !actions.has(n) || ibmNames.has(n) || !ibmObjects.has(objectOf(n)))).toEqual([]);
  });
});

describe('names IBM revised', () => {
  const current = loadCatalog('current');
  const match = (method: string, path: string): string =>
    current.match(method, parseRequestTarget(path).segments).operation.actions.current;

  test.each([
    ['GET', '/v2/projects', 'codeengine.project.read'],
    ['HEAD', '/v2/projects', 'codeengine.project.read'],
    ['GET', '/v2/projects/0b4d2c1e-5f6a-4b7c-8d9e-0f1a2b3c4d5e', 'codeengine.project.read'],
    ['GET', '/v2/projects/p/apps', 'codeengine.application.list'],
    ['GET', '/v2/projects/p/secrets', 'codeengine.secret.list'],
    ['GET', '/api/v1/namespaces/n/pods', 'codeengine.pods.list'],
  ])('ACTION_CATALOG=current: %s %s -> %s', (method, path, action) => {
    expect(match(method, path)).toBe(action);
  });
});
