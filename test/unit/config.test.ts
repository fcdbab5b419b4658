import fc from 'fast-check';
import { defaultRegion, describeSettings, loadConfig, loadSettings, resolveUpstream } from '../../src/config';
import { GatewayError } from '../../src/errors';
import { readSchemaFile } from '../../src/schemas';

const REGIONS = ['us-south', 'us-east', 'br-sao', 'ca-tor', 'eu-de', 'eu-gb', 'eu-es', 'jp-tok', 'jp-osa', 'au-syd', 'in-che'];

function configError(env: NodeJS.ProcessEnv): GatewayError {
  let caught: unknown;
  try {
    loadConfig(env);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(GatewayError);
  const error = caught as GatewayError;
  expect(error.code).toBe('ERR_CONFIG_INVALID');
  return error;
}

describe('loadConfig: defaults', () => {
  test('an empty environment gives the documented defaults', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8080);
    expect(config.adminPort).toBe(9090);
    expect(config.host).toBe('127.0.0.1');
    expect(config.adminHost).toBe('127.0.0.1');
    expect(config.region).toBe('us-south');
    expect(config.actionEdition).toBe('2020');
    expect(defaultRegion(config).upstreams.api).toEqual({
      origin: 'https://api.us-south.codeengine.cloud.ibm.com',
      basePath: '',
      host: 'api.us-south.codeengine.cloud.ibm.com',
    });
    expect(defaultRegion(config).upstreams.kube).toEqual({
      origin: 'https://proxy.us-south.codeengine.cloud.ibm.com',
      basePath: '',
      host: 'proxy.us-south.codeengine.cloud.ibm.com',
    });
    expect(config.accountId).toBeUndefined();
    expect(config.namespaceProjects.size).toBe(0);
    expect(config.sinks).toEqual(['file']);
    expect(config.fileDir).toBe('./data/audit');
    expect(config.fileFsync).toBe(true);
    expect(config.captureMaxBytes).toBe(65536);
    expect(config.responseData).toBe('changes');
    expect(config.upstream).toEqual({ connectTimeoutMs: 10000, headersTimeoutMs: 120000, bodyTimeoutMs: 300000, connections: 256 });
    expect(config.trustedProxies).toBeUndefined();
    expect(config.logLevel).toBe('info');
  });

  test('empty and blank strings count as unset', () => {
    const config = loadConfig({
      PORT: '',
      ADMIN_PORT: '   ',
      CE_REGION: '',
      ACTION_CATALOG: ' ',
      TRUSTED_PROXIES: '',
      AT_FILE_FSYNC: '',
      CE_ACCOUNT_ID: '',
    });
    expect(config.port).toBe(8080);
    expect(config.adminPort).toBe(9090);
    expect(config.region).toBe('us-south');
    expect(config.actionEdition).toBe('2020');
    expect(config.trustedProxies).toBeUndefined();
    expect(config.fileFsync).toBe(true);
    expect(config.accountId).toBeUndefined();
  });

  test('values are trimmed', () => {
    const config = loadConfig({ PORT: ' 8081 ', CE_REGION: ' eu-de ' });
    expect(config.port).toBe(8081);
    expect(config.region).toBe('eu-de');
  });

  test('variables outside the schema are ignored', () => {
    expect(loadConfig({ PATH: '/usr/bin', HOME: '/root', SOMETHING_ELSE: '1' }).port).toBe(8080);
  });
});

describe('loadConfig: values', () => {
  test('{region} is substituted in both upstreams', () => {
    const config = loadConfig({ CE_REGION: 'eu-de' });
    expect(config.region).toBe('eu-de');
    expect(defaultRegion(config).upstreams.api.origin).toBe('https://api.eu-de.codeengine.cloud.ibm.com');
    expect(defaultRegion(config).upstreams.kube.origin).toBe('https://proxy.eu-de.codeengine.cloud.ibm.com');
    expect(defaultRegion(config).upstreams.api.host).toBe('api.eu-de.codeengine.cloud.ibm.com');
  });

  test('every region is accepted', () => {
    for (const region of REGIONS)
      expect(defaultRegion(loadConfig({ CE_REGION: region })).upstreams.api.origin).toBe(`https://api.${region}.codeengine.cloud.ibm.com`);
  });

  test('a base path is kept (without its trailing slash); ports stay in origin and host', () => {
    const config = loadConfig({ CE_API_URL: 'http://localhost:9999/ce/{region}/', CE_KUBE_API_URL: 'https://kube.example.com:8443/' });
    expect(defaultRegion(config).upstreams.api).toEqual({
      origin: 'http://localhost:9999',
      basePath: '/ce/us-south',
      host: 'localhost:9999',
    });
    expect(defaultRegion(config).upstreams.kube).toEqual({
      origin: 'https://kube.example.com:8443',
      basePath: '',
      host: 'kube.example.com:8443',
    });
  });

  test('resolveUpstream directly', () => {
    expect(resolveUpstream('CE_API_URL', 'https://api.{region}.example.com/base//', 'jp-tok')).toEqual({
      origin: 'https://api.jp-tok.example.com',
      basePath: '/base',
      host: 'api.jp-tok.example.com',
    });
  });

  test('namespace map, account id, booleans, enums and integers are parsed', () => {
    const config = loadConfig({
      CE_NAMESPACE_MAP: '4svg40kna19=0b4d2c1e-1111-2222-3333-444455556666, abc = def',
      CE_ACCOUNT_ID: 'b0f3c1a2d4e5',
      AT_FILE_FSYNC: 'false',
      AUDIT_RESPONSE_DATA: 'failures',
      ACTION_CATALOG: 'current',
      CAPTURE_MAX_BYTES: '0',
      LOG_LEVEL: 'silent',
    });
    expect([...config.namespaceProjects]).toEqual([
      ['4svg40kna19', '0b4d2c1e-1111-2222-3333-444455556666'],
      ['abc', 'def'],
    ]);
    expect(config.accountId).toBe('b0f3c1a2d4e5');
    expect(config.fileFsync).toBe(false);
    expect(config.responseData).toBe('failures');
    expect(config.actionEdition).toBe('current');
    expect(config.captureMaxBytes).toBe(0);
    expect(config.logLevel).toBe('silent');
  });

  test('trusted proxies become a BlockList of addresses and ranges, IPv4 and IPv6', () => {
    const list = loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8, 127.0.0.1,fd00::/8, ::1' }).trustedProxies;
    expect(list).toBeDefined();
    expect(list?.check('10.20.30.40', 'ipv4')).toBe(true);
    expect(list?.check('127.0.0.1', 'ipv4')).toBe(true);
    expect(list?.check('127.0.0.2', 'ipv4')).toBe(false);
    expect(list?.check('fd12::1', 'ipv6')).toBe(true);
    expect(list?.check('::1', 'ipv6')).toBe(true);
    expect(list?.check('2001:db8::1', 'ipv6')).toBe(false);
    expect(loadConfig({ TRUSTED_PROXIES: ' , ' }).trustedProxies).toBeUndefined();
  });

  test('ADMIN_PORT may equal PORT only on another host, or when both pick a free port', () => {
    expect(loadConfig({ PORT: '9000', ADMIN_PORT: '9000', ADMIN_HOST: '127.0.0.2' }).adminPort).toBe(9000);
    const both0 = loadConfig({ PORT: '0', ADMIN_PORT: '0' });
    expect([both0.port, both0.adminPort]).toEqual([0, 0]);
  });

  test('port boundaries', () => {
    expect(loadConfig({ PORT: '0' }).port).toBe(0);
    expect(loadConfig({ PORT: '65535' }).port).toBe(65535);
    expect(loadConfig({ ADMIN_PORT: '0' }).adminPort).toBe(0);
  });

  // loadConfig compiles the schema on each call (~25 ms), so this property runs only a few cases.
  test('property: any port from 1 to 65535 other than the admin port is accepted as given', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 65535 }).filter((p) => p !== 9090),
        (port) => {
          expect(loadConfig({ PORT: String(port) }).port).toBe(port);
        },
      ),
      { numRuns: 12 },
    );
  });
});

describe('loadConfig: bad values name the variable and what it accepts', () => {
  test.each<[NodeJS.ProcessEnv, string, RegExp]>([
    [{ PORT: 'abc' }, 'PORT="abc"', /an integer from 0 to 65535/],
    [{ PORT: '70000' }, 'PORT="70000"', /an integer from 0 to 65535/],
    [{ PORT: '-1' }, 'PORT="-1"', /an integer from 0 to 65535/],
    [{ PORT: '80.5' }, 'PORT="80.5"', /an integer from 0 to 65535/],
    [{ ADMIN_PORT: '65536' }, 'ADMIN_PORT="65536"', /an integer from 0 to 65535/],
    [{ CE_REGION: 'mars' }, 'CE_REGION="mars"', new RegExp(REGIONS.join(', '))],
    [{ ACTION_CATALOG: '2019' }, 'ACTION_CATALOG="2019"', /one of 2020, current/],
    [{ CE_API_URL: 'ftp://x' }, 'CE_API_URL="ftp://x"', /http\(s\) URL/],
    [
      { CE_API_URL: 'https://api.{region}.example.com/?debug=1' },
      'CE_API_URL="https://api.{region}.example.com/?debug=1"',
      /no query or fragment/,
    ],
    [{ CE_KUBE_API_URL: 'https://proxy.example.com/#x' }, 'CE_KUBE_API_URL="https://proxy.example.com/#x"', /no query or fragment/],
    [{ CE_API_URL: 'https://user:pass@api.example.com' }, 'CE_API_URL=', /http\(s\) URL/],
    [{ CE_API_URL: 'not a url' }, 'CE_API_URL="not a url"', /http\(s\) URL/],
    [{ TRUSTED_PROXIES: 'not-an-ip' }, 'TRUSTED_PROXIES="not-an-ip"', /IP addresses or CIDR ranges/],
    [{ TRUSTED_PROXIES: '10.0.0.0/99' }, 'TRUSTED_PROXIES="10.0.0.0/99"', /IP addresses or CIDR ranges/],
    [{ TRUSTED_PROXIES: '10.0.0.0/8,::1/129' }, 'TRUSTED_PROXIES=', /IP addresses or CIDR ranges/],
    [{ TRUSTED_PROXIES: '10.0.0/8' }, 'TRUSTED_PROXIES="10.0.0/8"', /IP addresses or CIDR ranges/],
    [{ CE_NAMESPACE_MAP: 'garbage' }, 'CE_NAMESPACE_MAP="garbage"', /namespace=projectId/],
    [{ CE_NAMESPACE_MAP: 'ns=proj,=x' }, 'CE_NAMESPACE_MAP=', /namespace=projectId/],
    [{ AT_FILE_FSYNC: 'maybe' }, 'AT_FILE_FSYNC="maybe"', /true or false/],
    [{ CE_ACCOUNT_ID: 'acc:1/x' }, 'CE_ACCOUNT_ID="acc:1/x"', /account id/],
    [{ AUDIT_RESPONSE_DATA: 'some' }, 'AUDIT_RESPONSE_DATA="some"', /one of all, changes, failures, none/],
    [{ CAPTURE_MAX_BYTES: '2000000' }, 'CAPTURE_MAX_BYTES="2000000"', /an integer from 0 to 1048576/],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL="verbose"', /one of fatal, error, warn, info, debug, trace, silent/],
    [{ HEAP_GROWING_PERCENT: '-5' }, 'HEAP_GROWING_PERCENT="-5"', /an integer from 0 to 1000/],
    [{ HEAP_GROWING_PERCENT: 'lots' }, 'HEAP_GROWING_PERCENT="lots"', /an integer from 0 to 1000/],
  ])('%j', (env, named, accepts) => {
    const error = configError(env);
    expect(error.message).toContain(named);
    expect(error.message).toMatch(accepts);
  });

  test('several bad values are reported together', () => {
    const error = configError({ PORT: 'abc', CE_REGION: 'mars', AT_FILE_FSYNC: 'maybe', ACTION_CATALOG: '2019' });
    for (const name of ['PORT="abc"', 'CE_REGION="mars"', 'AT_FILE_FSYNC="maybe"', 'ACTION_CATALOG="2019"'])
      expect(error.message).toContain(name);
    expect(error.message.match(/is not valid/g)).toHaveLength(4);
  });

  test('ADMIN_PORT equal to PORT on the same host is refused', () => {
    const error = configError({ PORT: '9000', ADMIN_PORT: '9000' });
    expect(error.message).toContain('ADMIN_PORT="9000"');
    expect(error.message).toMatch(/different from PORT \(9000\)/);
    expect(configError({ ADMIN_PORT: '8080' }).message).toContain('ADMIN_PORT');
    expect(configError({ PORT: '9090' }).message).toContain('ADMIN_PORT');
  });

  test('loadSettings alone throws the same kind of error', () => {
    expect(() => loadSettings({ PORT: 'abc' })).toThrow(GatewayError);
    expect(() => loadSettings({ PORT: 'abc' })).toThrow(/PORT="abc"/);
  });

  // Regression: ajv's coercion alone took PORT=0x1F90 as 8080 and PORT=1e3 as 1000.
  test('integer settings accept only decimal integers', () => {
    configError({ PORT: '0x1F90', ADMIN_PORT: '9091' });
    configError({ PORT: '1e3' });
  });

  // Regression: checks after the schema stage (URL, CIDR, ADMIN_PORT) used to stop at the first problem.
  test('schema and post-schema problems are reported together', () => {
    const error = configError({ PORT: 'abc', CE_API_URL: 'https://x.example.com/?q=1', TRUSTED_PROXIES: '10.0.0.0/99' });
    expect(error.message).toContain('PORT=');
    expect(error.message).toContain('CE_API_URL=');
    expect(error.message).toContain('TRUSTED_PROXIES=');
  });
});

describe('describeSettings', () => {
  test('lists every schema property and per-region pattern, each with a description and its default', () => {
    const schema = readSchemaFile('config.schema.json') as {
      properties: Record<string, unknown>;
      patternProperties: Record<string, { 'x-name': string }>;
    };
    const settings = describeSettings();
    expect(settings.map((s) => s.name)).toEqual([
      ...Object.keys(schema.properties),
      ...Object.values(schema.patternProperties).map((p) => p['x-name']),
    ]);
    expect(settings.map((s) => s.name)).toContain('AT_INGESTION_KEY_<REGION>');
    for (const s of settings) expect(s.description.length).toBeGreaterThan(10);
    const byName = new Map(settings.map((s) => [s.name, s.default]));
    expect(byName.get('PORT')).toBe(8080);
    expect(byName.get('ADMIN_PORT')).toBe(9090);
    expect(byName.get('CE_REGION')).toBe('us-south');
    expect(byName.get('CE_API_URL')).toBe('https://api.{region}.codeengine.cloud.ibm.com');
    expect(byName.get('ACTION_CATALOG')).toBe('2020');
    expect(byName.get('AT_FILE_FSYNC')).toBe(true);
    expect(byName.get('ADMIN_HOST')).toBe('127.0.0.1');
    expect(byName.get('ADMIN_TOKEN')).toBeUndefined();
  });

  test('the defaults it reports are the ones loadSettings applies', () => {
    const settings = loadSettings({}) as unknown as Record<string, unknown>;
    for (const { name, default: value } of describeSettings()) {
      if (value === undefined) expect(settings[name]).toBeUndefined();
      else expect(settings[name]).toEqual(value);
    }
  });
});

describe('regions and sinks', () => {
  test('CE_REGIONS: the default region first, each with its own upstreams', () => {
    const config = loadConfig({ CE_REGION: 'eu-de', CE_REGIONS: 'us-south, eu-de,jp-tok' });
    expect([...config.regions.keys()]).toEqual(['eu-de', 'us-south', 'jp-tok']);
    expect(config.regions.get('jp-tok')?.upstreams.api.origin).toBe('https://api.jp-tok.codeengine.cloud.ibm.com');
  });

  test('CE_REGIONS must include CE_REGION, and name real regions', () => {
    expect(configError({ CE_REGION: 'eu-de', CE_REGIONS: 'us-south' }).message).toMatch(
      /CE_REGIONS="us-south".*includes CE_REGION \(eu-de\)/,
    );
    expect(configError({ CE_REGIONS: 'us-south,moon-1' }).message).toMatch(
      /CE_REGIONS="us-south,moon-1" is not valid: expected a comma list of Code Engine regions/,
    );
  });

  test('logdna: per-region key, else the shared one; the URL template per region', () => {
    const config = loadConfig({
      AT_SINK: 'file,logdna',
      CE_REGIONS: 'us-south,eu-de',
      AT_INGESTION_KEY_EU_DE: 'eu-key-0123456789',
      AT_INGESTION_KEY: 'shared-key-0123456789',
    });
    expect(config.sinks).toEqual(['file', 'logdna']);
    expect(config.regions.get('eu-de')?.logdna).toEqual({
      url: 'https://logs.eu-de.logging.cloud.ibm.com/logs/ingest',
      ingestionKey: 'eu-key-0123456789',
    });
    expect(config.regions.get('us-south')?.logdna?.ingestionKey).toBe('shared-key-0123456789');
    expect(config.secrets).toEqual(expect.arrayContaining(['eu-key-0123456789', 'shared-key-0123456789']));
  });

  test('a region without credentials is a start-up error naming the variable, and keys are never echoed', () => {
    const error = configError({ AT_SINK: 'logdna', CE_REGIONS: 'us-south,eu-gb', AT_INGESTION_KEY_US_SOUTH: 'us-key-0123456789' });
    expect(error.message).toMatch(/AT_INGESTION_KEY_EU_GB is missing: the logdna sink needs an ingestion key for region eu-gb/);
    expect(error.message).not.toContain('us-key-0123456789');
    const short = configError({ AT_SINK: 'logdna', AT_INGESTION_KEY: 'short' });
    expect(short.message).toMatch(/AT_INGESTION_KEY=\(hidden\) is not valid/);
    expect(short.message).not.toContain('short"');
  });

  test('cloud-logs needs a URL per region and an API key', () => {
    const error = configError({
      AT_SINK: 'cloud-logs',
      CE_REGIONS: 'us-south,eu-de',
      AT_CLOUD_LOGS_URL_US_SOUTH: 'https://abc.ingress.us-south.logs.cloud.ibm.com/logs/v1/singles',
    });
    expect(error.message).toMatch(/AT_CLOUD_LOGS_URL_EU_DE is missing/);
    expect(error.message).toMatch(/IBMCLOUD_API_KEY is missing/);
    const config = loadConfig({
      AT_SINK: 'cloud-logs',
      AT_CLOUD_LOGS_URL: 'https://abc.ingress.{region}.logs.cloud.ibm.com/logs/v1/singles',
      IBMCLOUD_API_KEY: 'api-key-0123456789',
    });
    expect(config.regions.get('us-south')?.cloudLogsUrl).toBe('https://abc.ingress.us-south.logs.cloud.ibm.com/logs/v1/singles');
    expect(config.cloudLogs).toMatchObject({
      application: 'ibm-audit-events',
      subsystem: 'codeengine',
      iamTokenUrl: 'https://iam.cloud.ibm.com/identity/token',
    });
  });

  test('unknown sinks and policies are refused', () => {
    expect(configError({ AT_SINK: 'file,kafka' }).message).toMatch(
      /AT_SINK="file,kafka" is not valid: expected a comma list of sinks: file, stdout, logdna, cloud-logs/,
    );
    expect(configError({ SPOOL_FULL_POLICY: 'panic' }).message).toMatch(/one of reject-writes, reject-all, drop-oldest/);
  });
});
