/**
 * The route catalog (schemas/route-catalog.json) against the Code Engine API: every v2 operation, the v1
 * kubeconfig reads, the Kubernetes resources Code Engine exposes, and both editions of action names.
 */
import fc from 'fast-check';
import v2 from '../fixtures/code-engine-v2-operations.json';
import { parseRequestTarget } from '../../src/http/request-target';
import { loadCatalog, loadCatalogDocument, RouteCatalog } from '../../src/routing/catalog';
import type { RouteMatch } from '../../src/types';

const current = loadCatalog('current');
const edition2020 = loadCatalog('2020');

function match(catalog: RouteCatalog, method: string, path: string): RouteMatch {
  return catalog.match(method, parseRequestTarget(path).segments);
}

function concrete(pattern: string): string {
  return pattern
    .replace('{id}', '0b4d2c1e-5f6a-4b7c-8d9e-0f1a2b3c4d5e')
    .replace('{project_id}', '0b4d2c1e-5f6a-4b7c-8d9e-0f1a2b3c4d5e')
    .replace('{app_name}', 'my-app')
    .replace('{name}', 'thing-1');
}

describe('v2 REST API', () => {
  test('the fixture lists the 67 operations of the SDKs', () => {
    expect(v2.operations).toHaveLength(67);
    expect(new Set(v2.operations.map((o) => o.operation)).size).toBe(67);
  });

  test.each(v2.operations.map((o) => [o.operation, o.method, o.path] as const))(
    '%s (%s %s) is a catalog operation',
    (operation, method, path) => {
      const m = match(current, method, concrete(path));
      expect(m.operation.operationId).toBe(operation);
      expect(m.operation.generic).toBe(false);
      expect(m.upstream).toBe('api');
      expect(m.operation.actions.current).toMatch(/^codeengine\.[a-z]+\.(create|read|list|update|delete)$/);
    },
  );

  test('every catalog operation id is one of the 67', () => {
    const ids = new Set(v2.operations.map((o) => o.operation));
    const named = current.describe().flatMap((r) => r.operations.map((o) => o.operationId).filter((id): id is string => id !== undefined));
    expect(named.filter((id) => !ids.has(id))).toEqual([]);
    expect(new Set(named).size).toBe(67);
  });

  test.each([
    ['PATCH', '/v2/projects/p1', 'codeengine.project.update'],
    ['PATCH', '/v2/projects/p1/build_runs/r1', 'codeengine.buildrun.update'],
    ['PUT', '/v2/projects/p1/build_runs/r1', 'codeengine.buildrun.update'],
    ['PATCH', '/v2/projects/p1/job_runs/r1', 'codeengine.jobrun.update'],
    ['PUT', '/v2/projects/p1/job_runs/r1', 'codeengine.jobrun.update'],
  ])('%s %s (beyond the SDKs) -> %s', (method, path, action) => {
    const m = match(current, method, path);
    expect(m.operation.actions.current).toBe(action);
    expect(m.operation.generic).toBe(false);
    expect(m.params.name ?? m.params.id).toBe(path.split('/').pop());
  });

  test.each([
    ['POST', '/v2/projects/p/functions', 'codeengine.function.create'],
    ['PATCH', '/v2/projects/p/domain_mappings/www.example.com', 'codeengine.domainmapping.update'],
    ['DELETE', '/v2/projects/p/bindings/b-1', 'codeengine.binding.delete'],
    ['GET', '/v2/projects/p/allowed_outbound_destinations', 'codeengine.allowedoutbounddestination.list'],
    ['DELETE', '/v2/projects/p/persistent_data_stores/pds', 'codeengine.persistentdatastore.delete'],
    ['DELETE', '/v2/projects/p/apps/a/revisions/a-00001', 'codeengine.apprevision.delete'],
    ['GET', '/v2/projects/p/apps/a/instances', 'codeengine.appinstance.list'],
    ['GET', '/v2/function_runtimes', 'codeengine.functionruntime.list'],
    ['GET', '/v2/projects/p/egress_ips', 'codeengine.projectegressips.read'],
  ])('operations no IBM edition names get names in the same pattern: %s %s -> %s', (method, path, action) => {
    expect(match(current, method, path).operation.actions.current).toBe(action);
  });

  test('target names: creates from the body, items from the URL, lists from the project', () => {
    expect(match(current, 'POST', '/v2/projects/p/apps').operation.targetName).toEqual(['body:/name', 'response:/name']);
    expect(match(current, 'GET', '/v2/projects/p/apps/a').operation.targetName).toEqual(['param:name']);
    expect(match(current, 'GET', '/v2/projects/p/apps').operation.targetName).toEqual(['param:project_id']);
    expect(match(current, 'GET', '/v2/projects/p/bindings/b').operation.targetName).toEqual(['param:id']);
  });

  test('secret changes and kubeconfig reads are critical; secret bodies are secret-bearing', () => {
    for (const [method, path] of [
      ['POST', '/v2/projects/p/secrets'],
      ['PUT', '/v2/projects/p/secrets/s'],
      ['DELETE', '/v2/projects/p/secrets/s'],
      ['GET', '/api/v1/project/p/config'],
      ['GET', '/api/v1/namespaces/p/config'],
    ] as const) {
      const op = match(current, method, path).operation;
      expect({ path, severity: op.severity, secretBearing: op.secretBearing }).toEqual({ path, severity: 'critical', secretBearing: true });
    }
    expect(match(current, 'GET', '/v2/projects/p/secrets/s').operation.severity).toBe('normal');
    expect(match(current, 'GET', '/api/v1/project/p/config').operation.omitResponse).toBe(true);
    expect(match(current, 'PATCH', '/v2/projects/p/apps/a').operation.severity).toBe('warning');
    expect(match(current, 'DELETE', '/v2/projects/p/apps/a').operation.severity).toBe('critical');
  });
});

describe('v1 kubeconfig', () => {
  test.each(['/api/v1/project/0b4d/config', '/api/v1/namespaces/0b4d/config'])(
    '%s -> codeengine.projectconfig.read on the API host',
    (path) => {
      for (const catalog of [current, edition2020]) {
        const m = match(catalog, 'GET', path);
        expect(m.upstream).toBe('api');
        expect(m.operation.actions).toEqual({ '2020': 'codeengine.projectconfig.read', current: 'codeengine.projectconfig.read' });
        expect(m.params.id).toBe('0b4d');
      }
    },
  );
});

describe('Kubernetes API', () => {
  const ns = '/api/v1/namespaces/4svg40kna19';
  test.each([
    ['GET', `${ns}/pods`, 'codeengine.pods.list', 'codeengine.pods.read'],
    ['POST', `${ns}/pods`, 'codeengine.pods.create', 'codeengine.pods.create'],
    ['GET', `${ns}/pods/p`, 'codeengine.pods.read', 'codeengine.pods.read'],
    ['PATCH', `${ns}/pods/p`, 'codeengine.pods.update', 'codeengine.pods.update'],
    ['DELETE', `${ns}/pods/p`, 'codeengine.pods.delete', 'codeengine.pods.delete'],
    ['GET', `${ns}/pods/p/log`, 'codeengine.pods.read', 'codeengine.pods.read'],
    ['POST', `${ns}/pods/p/exec`, 'codeengine.pods.exec', 'codeengine.pods.exec'],
    ['GET', `${ns}/pods/p/portforward`, 'codeengine.pods.portforward', 'codeengine.pods.portforward'],
    ['GET', `${ns}/serviceaccounts`, 'codeengine.serviceaccounts.list', 'codeengine.serviceaccounts.read'],
    ['GET', `${ns}/serviceaccounts/default`, 'codeengine.serviceaccounts.read', 'codeengine.serviceaccounts.read'],
    ['GET', `${ns}/events`, 'codeengine.events.list', 'codeengine.events.read'],
    ['GET', `${ns}/resourcequotas/q`, 'codeengine.resourcequotas.read', 'codeengine.resourcequotas.read'],
    ['GET', `${ns}/limitranges`, 'codeengine.limitranges.list', 'codeengine.limitranges.read'],
    ['GET', `${ns}/services/s`, 'codeengine.services.read', 'codeengine.services.read'],
    ['PUT', `${ns}/configmaps/c`, 'codeengine.configmap.update', 'codeengine.configmaps.update'],
    ['DELETE', `${ns}/secrets/s`, 'codeengine.secret.delete', 'codeengine.secrets.delete'],
    ['GET', '/apis/apps/v1/namespaces/n/deployments', 'codeengine.deployments.list', 'codeengine.deployments.read'],
    ['GET', '/apis/apps/v1/namespaces/n/deployments/d', 'codeengine.deployments.read', 'codeengine.deployments.read'],
    ['POST', '/apis/serving.knative.dev/v1/namespaces/n/services', 'codeengine.application.create', 'codeengine.appliction.create'],
    ['GET', '/apis/serving.knative.dev/v1/namespaces/n/revisions/r', 'codeengine.application.read', 'codeengine.appliction.read'],
    ['GET', '/apis/serving.knative.dev/v1/namespaces/n/routes', 'codeengine.application.list', 'codeengine.appliction.read'],
    ['GET', '/apis/serving.knative.dev/v1/namespaces/n/configurations/c', 'codeengine.application.read', 'codeengine.appliction.read'],
    ['PATCH', '/apis/shipwright.io/v1beta1/namespaces/n/builds/b', 'codeengine.build.update', 'codeengine.build.update'],
    ['POST', '/apis/build.dev/v1alpha1/namespaces/n/buildruns', 'codeengine.buildrun.create', 'codeengine.buildrun.create'],
    ['DELETE', '/apis/codeengine.cloud.ibm.com/v1beta1/namespaces/n/jobdefinitions/j', 'codeengine.job.delete', 'codeengine.job.delete'],
    ['GET', '/apis/codeengine.cloud.ibm.com/v1alpha1/namespaces/n/jobruns', 'codeengine.jobrun.list', 'codeengine.jobrun.read'],
    ['POST', '/apis/codeengine.cloud.ibm.com/v1beta1/namespaces/n/functions', 'codeengine.function.create', 'codeengine.function.create'],
    [
      'PUT',
      '/apis/sources.knative.dev/v1/namespaces/n/pingsources/ping',
      'codeengine.subscription.update',
      'codeengine.subscription.update',
    ],
    ['GET', '/apis/sources.knative.dev/v1beta1/namespaces/n/kafkasources', 'codeengine.subscription.list', 'codeengine.subscription.read'],
    [
      'DELETE',
      '/apis/sources.codeengine.cloud.ibm.com/v1alpha1/namespaces/n/cossources/c',
      'codeengine.subscription.delete',
      'codeengine.subscription.delete',
    ],
    [
      'POST',
      '/apis/binding.operators.coreos.com/v1alpha1/namespaces/n/servicebindings',
      'codeengine.servicebindings.create',
      'codeengine.servicebindings.create',
    ],
    [
      'GET',
      '/apis/servicebinding.io/v1beta1/namespaces/n/servicebindings/b',
      'codeengine.servicebindings.read',
      'codeengine.servicebindings.read',
    ],
  ])('%s %s -> %s (2020: %s)', (method, path, actionCurrent, action2020) => {
    const m = match(current, method, path);
    expect(m.upstream).toBe('kube');
    expect(m.operation.generic).toBe(false);
    expect(m.operation.actions).toEqual({ current: actionCurrent, '2020': action2020 });
    expect(m.operation.projectIsNamespace).toBe(true);
  });

  test('kubectl create takes the name from metadata', () => {
    expect(match(current, 'POST', `${ns}/configmaps`).operation.targetName).toEqual([
      'body:/metadata/name',
      'response:/metadata/name',
      'body:/metadata/generateName',
    ]);
  });

  test('exec, attach and port-forward are critical', () => {
    for (const sub of ['exec', 'attach', 'portforward'])
      expect(match(current, 'GET', `${ns}/pods/p/${sub}`).operation.severity).toBe('critical');
  });

  test('resources Code Engine does not list still get their kind as object type', () => {
    const m = match(current, 'GET', `${ns}/persistentvolumeclaims/data`);
    expect(m.operation.generic).toBe(true);
    expect(m.operation.actions.current).toBe('codeengine.persistentvolumeclaims.read');
    expect(m.params.namespace).toBe('4svg40kna19');
    expect(match(current, 'DELETE', '/apis/example.com/v1/namespaces/n/widgets').operation.actions.current).toBe(
      'codeengine.widgets.delete',
    );
  });

  test('discovery calls are audited too', () => {
    for (const path of ['/api', '/apis', '/api/v1', '/apis/apps/v1', '/version', '/openapi/v2']) {
      expect(match(current, 'GET', path).operation.actions.current).toBe('codeengine.apidiscovery.read');
    }
  });

  // kubectl 1.20 falls back to /swagger-2.0.0.pb-v1 when /openapi/v2 is missing; 1.32 reads /openapi/v3 and
  // then one document per group version. All are reads of the API's description, not of a resource.
  test.each([
    '/swagger-2.0.0.pb-v1',
    '/swagger-2.0.0.pb-v1.gz',
    '/swagger-2.0.0.json',
    '/swagger.json',
    '/swaggerapi',
    '/swaggerapi/api/v1',
    '/openapi/v3',
    '/openapi/v3/api/v1',
    '/openapi/v3/apis/apps/v1',
  ])('kubectl OpenAPI download %s is API discovery in both editions', (path) => {
    for (const catalog of [current, edition2020]) {
      const m = match(catalog, 'GET', path);
      expect(m.operation.actions).toEqual({ '2020': 'codeengine.apidiscovery.read', current: 'codeengine.apidiscovery.read' });
      expect(m.operation.generic).toBe(false);
      expect(m.upstream).toBe('kube');
    }
  });
});

describe('unmatched calls are audited with a derived action', () => {
  test.each([
    ['GET', '/v2/new_things', 'codeengine.newthings.read', 'api'],
    ['POST', '/v2/projects/p/new_things', 'codeengine.newthings.create', 'api'],
    ['GET', '/healthz', 'codeengine.healthz.read', 'kube'],
    ['OPTIONS', '/v2/projects/p/apps', 'codeengine.application.options', 'api'],
    ['HEAD', '/v2/projects/p/apps/a', 'codeengine.application.read', 'api'],
    ['PROPFIND', '/', 'codeengine.root.propfind', 'kube'],
  ])('%s %s -> %s on %s', (method, path, action, upstream) => {
    const m = match(current, method, path);
    expect(m.operation.actions.current).toBe(action);
    expect(m.upstream).toBe(upstream);
  });

  test('property: any path and method gives a well-formed action, bounded in length', () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=:@-]{1,20}$/);
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 8 }),
        fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'MKCOL'),
        (segments, method) => {
          const m = current.match(method, segments);
          for (const action of Object.values(m.operation.actions)) {
            expect(action).toMatch(/^codeengine\.[a-z0-9]{1,48}\.[a-z0-9]{1,48}$/);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('the catalog document', () => {
  test('a duplicate route or an unknown parameter is refused at start-up', () => {
    const doc = loadCatalogDocument();
    const first = doc.routes[0];
    if (!first) throw new Error('empty catalog');
    expect(() => new RouteCatalog({ ...doc, routes: [...doc.routes, first] }, 'current')).toThrow(/appears twice/);
    expect(() => new RouteCatalog({ ...doc, routes: [{ ...first, path: '/v2/x', targetName: ['param:nope'] }] }, 'current')).toThrow(
      /param:nope is not a parameter/,
    );
    expect(() => new RouteCatalog({ ...doc, routes: [{ ...first, path: '/v2/y', methodSet: 'nope' }] }, 'current')).toThrow(
      /unknown methodSet/,
    );
  });
});

describe('names that exist on every JavaScript object', () => {
  // Regression: "/constructor" found Object.prototype.constructor in the edition's name map and produced an
  // action of the form "codeengine.function Object() { [native code] }.read".
  test.each(['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'])(
    'a path segment %s gives a plain action',
    (word) => {
      for (const method of ['GET', 'POST', 'CONSTRUCTOR', 'TOSTRING']) {
        for (const segments of [[word], ['v2', word], ['v2', 'projects', 'p', word], ['api', 'v1', 'namespaces', 'n', word, 'x']]) {
          for (const action of Object.values(current.match(method, segments).operation.actions)) {
            expect(action).toMatch(/^codeengine\.[a-z0-9]{1,48}\.[a-z0-9]{1,48}$/);
          }
          expect(['normal', 'warning', 'critical']).toContain(current.match(method, segments).operation.severity);
        }
      }
    },
  );
});
