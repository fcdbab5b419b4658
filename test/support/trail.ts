/**
 * A real trail written by the gateway process (`node dist/index.js`): the fake Code Engine behind it, the receiver
 * taking LogDNA and Cloud Logs deliveries, the journal on disk, checkpoints signed with a key made by the built
 * `ce-audit keygen`. Calls are made in bursts so several checkpoints are written, then the process is stopped with
 * SIGTERM (the shutdown checkpoint covers the last event). The exports are made from what the receiver accepted.
 */
import { spawnSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { main } from '../../src/cli/main';
import { cloudLogsResults, cloudLogsSse, logdnaExport } from '../../src/receiver/export';
import { startReceiver } from '../../src/receiver/receiver';
import { startFakeCodeEngine } from './fake-code-engine';
import { spawnGateway, type GatewayProcess } from './gateway-process';
import { iamToken, USER_CLAIMS } from './harness';
import { until } from './load';

export const CLI = path.resolve(__dirname, '..', '..', 'bin', 'ce-audit.js');
const INGESTION_KEY = 'integrity-test-ingestion-key-0123';
const API_KEY = 'integrity-test-iam-api-key-4567';

export interface RecordedTrail {
  /** The journal's lines, in file order. */
  journal: string[];
  logdna: string;
  cloudLogs: string;
  sse: string;
  publicKeyPem: string;
  verifierKey: string;
  privateKeyFile: string;
  publicKeyFile: string;
  vkeyFile: string;
  /** Events delivered to each sink, to check nothing went missing on the way. */
  received: { logdna: number; cloudLogs: number };
  gatewayOutput: string;
}

export function keygen(dir: string): { stdout: string; status: number | null } {
  const r = spawnSync(process.execPath, [CLI, 'keygen', '--out', dir], { encoding: 'utf8' });
  return { stdout: r.stdout + r.stderr, status: r.status };
}

export async function journalLines(dir: string): Promise<string[]> {
  const lines: string[] = [];
  for (const region of (await readdir(dir)).sort()) {
    for (const file of (await readdir(path.join(dir, region))).sort()) {
      lines.push(...(await readFile(path.join(dir, region, file), 'utf8')).split('\n').filter((l) => l !== ''));
    }
  }
  return lines;
}

/** The calls a burst makes: creates, updates, reads, deletes, failures, with a user's token. */
async function burst(gw: GatewayProcess, n: number): Promise<void> {
  const headers = { authorization: `Bearer ${iamToken(USER_CLAIMS)}`, 'content-type': 'application/json' };
  const created = await fetch(`${gw.proxyUrl}/v2/projects`, { method: 'POST', headers, body: JSON.stringify({ name: `p-${n}` }) });
  const project = ((await created.json()) as { id: string }).id;
  const calls: Array<[string, string, unknown?]> = [
    ['POST', `/v2/projects/${project}/apps`, { name: `app-${n}`, image_reference: 'icr.io/codeengine/helloworld' }],
    ['GET', `/v2/projects/${project}/apps`],
    ['PATCH', `/v2/projects/${project}/apps/app-${n}`, { scale_max_instances: 3 }],
    ['POST', `/v2/projects/${project}/secrets`, { name: `s-${n}`, format: 'generic', data: { password: 'hunter2' } }],
    ['GET', `/v2/projects/${project}/apps/missing-${n}`],
    ['DELETE', `/v2/projects/${project}/apps/app-${n}`],
    ['GET', '/v2/function_runtimes'],
  ];
  for (const [method, p, body] of calls) {
    const res = await fetch(`${gw.proxyUrl}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    await res.arrayBuffer();
  }
}

export async function recordTrail(dir: string, bursts = 4): Promise<RecordedTrail> {
  const keyDir = path.join(dir, 'keys');
  const made = keygen(keyDir);
  if (made.status !== 0) throw new Error(`ce-audit keygen failed: ${made.stdout}`);
  const upstream = await startFakeCodeEngine();
  const receiver = await startReceiver({ logdnaKeys: { 'us-south': INGESTION_KEY }, iamApiKeys: [API_KEY] });
  const journalDir = path.join(dir, 'audit');
  let gw: GatewayProcess | undefined;
  try {
    gw = await spawnGateway({
      PORT: '0',
      ADMIN_PORT: '0',
      CE_API_URL: upstream.url,
      CE_KUBE_API_URL: upstream.url,
      CE_ACCOUNT_ID: 'acc0123456789abcdef0123456789abcd',
      AT_SINK: 'file,logdna,cloud-logs',
      AT_FILE_DIR: journalDir,
      SPOOL_DIR: path.join(dir, 'spool'),
      AT_LOGDNA_URL: receiver.logdnaUrlTemplate,
      AT_INGESTION_KEY: INGESTION_KEY,
      AT_CLOUD_LOGS_URL: receiver.cloudLogsUrlTemplate,
      IBMCLOUD_API_KEY: API_KEY,
      IAM_TOKEN_URL: receiver.iamTokenUrl,
      BATCH_MAX_WAIT_MS: '20',
      AUDIT_SIGNING_KEY_FILE: path.join(keyDir, 'audit-signing-key.pem'),
      AUDIT_CHECKPOINT_INTERVAL_MS: '250',
    });
    for (let i = 0; i < bursts; i++) {
      // Pauses longer than the checkpoint interval between bursts; none after the last: the shutdown checkpoint covers it.
      if (i > 0) await new Promise((r) => setTimeout(r, 400));
      await burst(gw, i);
    }
    gw.kill('SIGTERM');
    const exited = await gw.exited;
    if (exited.code !== 0) throw new Error(`gateway exited with ${JSON.stringify(exited)}:\n${gw.output()}`);
    const journal = await journalLines(journalDir);
    const count = (api: string): number => receiver.events().filter((e) => e.api === api).length;
    await until(() => count('logdna') >= journal.length && count('cloud-logs') >= journal.length, 5000);
    const events = receiver.events();
    return {
      journal,
      logdna: logdnaExport(events),
      cloudLogs: cloudLogsResults(events),
      sse: cloudLogsSse(events),
      publicKeyPem: await readFile(path.join(keyDir, 'audit-signing-key.pub.pem'), 'utf8'),
      verifierKey: (await readFile(path.join(keyDir, 'audit-signing-key.vkey'), 'utf8')).trim(),
      privateKeyFile: path.join(keyDir, 'audit-signing-key.pem'),
      publicKeyFile: path.join(keyDir, 'audit-signing-key.pub.pem'),
      vkeyFile: path.join(keyDir, 'audit-signing-key.vkey'),
      received: { logdna: count('logdna'), cloudLogs: count('cloud-logs') },
      gatewayOutput: gw.output(),
    };
  } finally {
    gw?.kill('SIGKILL');
    await receiver.close();
    await upstream.close();
  }
}

/** Runs ce-audit in this process (the same code as the bin), capturing its output. */
export async function ceAudit(args: readonly string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void): Writable =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        append(chunk.toString('utf8'));
        cb();
      },
    });
  const { Readable } = await import('node:stream');
  const code = await main(args, {
    stdout: sink((s) => (stdout += s)),
    stderr: sink((s) => (stderr += s)),
    stdin: Readable.from([Buffer.from(stdin)]),
  });
  return { code, stdout, stderr };
}

export interface JsonFinding {
  code: string;
  problem: boolean;
  message: string;
  seqs?: Array<number | [number, number]>;
  fields?: string[];
}

export interface JsonReport {
  ok: boolean;
  problems: number;
  logs: Array<{
    log: string;
    events: number;
    verified: number;
    coveredUpTo: number;
    firstSeq: number;
    lastSeq: number;
    checkpoints: { found: number; trusted: number; verdicts: Record<string, number> };
    findings: JsonFinding[];
  }>;
  findings: JsonFinding[];
  inputs: Array<{ path: string; formats: string[]; candidates: number; foreign: number }>;
}

/** ce-audit verify --json on files; the report and the exit code. */
export async function verifyJson(args: readonly string[]): Promise<{ code: number; report: JsonReport; stderr: string }> {
  const r = await ceAudit(['verify', '--json', ...args]);
  return { code: r.code, report: JSON.parse(r.stdout || '{}') as JsonReport, stderr: r.stderr };
}

/** Every finding code of a report, problems only unless `all`. */
export function codes(report: JsonReport, all = false): string[] {
  const list = [...report.findings, ...report.logs.flatMap((l) => l.findings)];
  return [...new Set(list.filter((f) => all || f.problem).map((f) => f.code))].sort();
}
