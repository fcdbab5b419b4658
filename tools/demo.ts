/**
 * `npm run demo`: the whole picture on one machine, with no IBM Cloud account. A Code Engine look-alike, the
 * gateway in front of it (two regions), and a receiver that behaves like Activity Tracker (LogDNA ingest and
 * IBM Cloud Logs). A short scenario runs through the gateway, then every event the receiver got is printed.
 * The servers stay up for you to try (Ctrl+C stops them); `npm run demo -- --once` exits after the scenario.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config';
import { Gateway } from '../src/gateway';
import { createLogger } from '../src/log';
import { startReceiver } from '../src/receiver/receiver';
import type { AuditEvent } from '../src/types';
import { startFakeCodeEngine } from '../test/support/fake-code-engine';

const KEYS = { 'us-south': 'demo-us-south-ingestion-key', 'eu-de': 'demo-eu-de-ingestion-key' };
const IAM_KEY = 'demo-iam-api-key-for-cloud-logs';

function token(claims: Record<string, unknown>): string {
  const part = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'none' })}.${part(claims)}.demo`;
}

async function call(base: string, method: string, urlPath: string, body?: unknown): Promise<number> {
  const res = await fetch(`${base}${urlPath}`, {
    method,
    headers: {
      authorization: `Bearer ${token({ iam_id: 'IBMid-DEMO01', name: 'Dana Demo', account: { bss: 'demoaccount0001' }, grant_type: 'urn:ibm:params:oauth:grant-type:apikey' })}`,
      'content-type': 'application/json',
      'if-match': '*',
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

async function main(): Promise<void> {
  const once = process.argv.includes('--once');
  const dataDir = process.env.DEMO_DATA_DIR ?? (await mkdtemp(path.join(tmpdir(), 'ce-audit-demo-')));
  const receiver = await startReceiver({ logdnaKeys: KEYS, iamApiKeys: [IAM_KEY] });
  const codeEngine = await startFakeCodeEngine();
  const config = loadConfig({
    PORT: process.env.PORT ?? '8080',
    ADMIN_PORT: process.env.ADMIN_PORT ?? '9090',
    CE_REGION: 'us-south',
    CE_REGIONS: 'us-south,eu-de',
    CE_API_URL: codeEngine.url,
    CE_KUBE_API_URL: codeEngine.url,
    AT_SINK: 'file,logdna,cloud-logs',
    AT_FILE_DIR: path.join(dataDir, 'audit'),
    SPOOL_DIR: path.join(dataDir, 'spool'),
    AT_LOGDNA_URL: receiver.logdnaUrlTemplate,
    AT_INGESTION_KEY_US_SOUTH: KEYS['us-south'],
    AT_INGESTION_KEY_EU_DE: KEYS['eu-de'],
    AT_CLOUD_LOGS_URL: receiver.cloudLogsUrlTemplate,
    IBMCLOUD_API_KEY: IAM_KEY,
    IAM_TOKEN_URL: receiver.iamTokenUrl,
    ACTION_CATALOG: process.env.ACTION_CATALOG ?? 'current',
    BATCH_MAX_WAIT_MS: '50',
  });
  const gateway = await Gateway.start(config, { logger: createLogger('warn') });
  const gw = gateway.proxyAddress.url;

  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  out(`Code Engine look-alike  ${codeEngine.url}`);
  out(`gateway                 ${gw}   (admin ${gateway.adminAddress.url}: /healthz /readyz /metrics)`);
  out(`Activity Tracker        ${receiver.url}   (events: ${receiver.url}/_events?region=us-south)`);
  out(`journal and spool       ${dataDir}\n`);

  const p = await fetch(`${gw}/v2/projects`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token({ iam_id: 'IBMid-DEMO01', name: 'Dana Demo', account: { bss: 'demoaccount0001' } })}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ name: 'demo-project' }),
  });
  const project = ((await p.json()) as { id: string }).id;
  const steps: Array<[string, string, unknown?]> = [
    [
      'POST',
      `/v2/projects/${project}/apps`,
      {
        name: 'hello',
        image_reference: 'icr.io/codeengine/helloworld',
        run_env_variables: [{ type: 'literal', name: 'DB_PASSWORD', value: 'hunter2' }],
      },
    ],
    ['PATCH', `/v2/projects/${project}/apps/hello`, { scale_max_instances: 5 }],
    ['POST', `/v2/projects/${project}/secrets`, { name: 'db', format: 'generic', data: { password: 'correct horse battery staple' } }],
    ['GET', `/v2/projects/${project}/apps/does-not-exist`],
    ['DELETE', `/v2/projects/${project}/secrets/db`],
    ['GET', `/api/v1/project/${project}/config`],
    ['GET', '/api/v1/namespaces/demo-ns/pods'],
    ['GET', '/regions/eu-de/v2/projects'],
  ];
  for (const [method, urlPath, body] of steps) out(`${method.padEnd(6)} ${urlPath}  -> ${await call(gw, method, urlPath, body)}`);

  await gateway.delivery.flush(Date.now() + 5000);
  out('\nEvents received by Activity Tracker (LogDNA ingest API), per region:');
  for (const region of ['us-south', 'eu-de']) {
    for (const e of receiver.events(region).filter((x) => x.api === 'logdna')) {
      const ev = e.event as AuditEvent;
      const reason = ev.reason.reasonForFailure ? ` (${ev.reason.reasonForFailure})` : '';
      out(
        `  ${region.padEnd(8)} ${ev.severity.padEnd(8)} ${ev.action.padEnd(32)} ${ev.outcome.padEnd(7)} ${ev.reason.reasonCode} ${ev.target.name}${reason}`,
      );
    }
  }
  const secret = receiver.events('us-south').find((e) => (e.event as AuditEvent).action === 'codeengine.secret.create');
  out(`\nThe secret's creation as recorded (values redacted):\n${JSON.stringify((secret?.event as AuditEvent | undefined)?.requestData)}`);
  out(
    `IBM Cloud Logs got ${receiver.events().filter((e) => e.api === 'cloud-logs').length} events with ${receiver.tokensIssued} IAM token.`,
  );

  const stop = async (): Promise<void> => {
    await gateway.stop();
    await codeEngine.close();
    await receiver.close();
    process.exit(0);
  };
  if (once) return stop();
  out(`\nTry it: curl -s ${gw}/v2/projects/${project}/apps | head -c 300; echo   (Ctrl+C to stop)`);
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
