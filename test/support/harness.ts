/**
 * End-to-end test kit: a fake Code Engine on a real port, the gateway on real ports in front of it, its
 * journal in a temporary directory, and helpers to read and validate the events it wrote.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { ValidateFunction } from 'ajv';
import { loadConfig } from '../../src/config';
import { Gateway } from '../../src/gateway';
import { createLogger } from '../../src/log';
import { CHECKPOINT_ACTION } from '../../src/integrity/checkpoint-event';
import { compileSchemaFile, createAjv, formatAjvErrors, readSchemaFile } from '../../src/schemas';
import type { AuditEvent } from '../../src/types';
import { startFakeCodeEngine, type FakeCodeEngine } from './fake-code-engine';

/** What every front end's harness gives a test: its URL, and the events it wrote to its journal. */
export interface AuditHarness {
  upstream: FakeCodeEngine;
  /** Base URL of the front end (the proxy listener, or the app with the audit middleware). */
  url: string;
  journalDir: string;
  spoolDir: string;
  /** Everything the gateway logged, as written. */
  logs: () => string;
  /**
   * All audit events in the journal (checkpoints left out), every one validated against
   * schemas/audit-event.schema.json. Delivery to the journal is asynchronous (spool first), so this first waits until
   * delivery has caught up.
   */
  events: () => Promise<AuditEvent[]>;
  /** The events of one transaction, once at least one is in the journal (bounded wait). */
  eventsFor: (transactionId: string, timeoutMs?: number) => Promise<AuditEvent[]>;
  /** Waits until the journal holds at least `count` events (bounded). */
  waitForEvents: (count: number, timeoutMs?: number) => Promise<AuditEvent[]>;
  close: () => Promise<void>;
}

export interface Harness extends AuditHarness {
  gateway: Gateway;
  adminUrl: string;
}

let validator: ValidateFunction<AuditEvent> | undefined;
let checkpointValidator: ValidateFunction<CheckpointEvent> | undefined;

/** A checkpoint event (schemas/audit-checkpoint.schema.json), as the journal holds it. */
export type CheckpointEvent = Record<string, unknown> & {
  id: string;
  action: typeof CHECKPOINT_ACTION;
  auditChain: { log: string; seq: number; prev: string | null; hash: string; v: 1 };
  auditCheckpoint: { size: number; root: string; note: string; reason: string; previous: { hash: string; seq: number } | null };
};

export function validateEvent(event: unknown): AuditEvent {
  validator ??= compileSchemaFile<AuditEvent>(createAjv(), 'audit-event.schema.json');
  if (!validator(event)) {
    throw new Error(`event does not match schemas/audit-event.schema.json: ${formatAjvErrors(validator.errors)}\n${JSON.stringify(event)}`);
  }
  return event;
}

export function validateCheckpoint(event: unknown): CheckpointEvent {
  if (!checkpointValidator) {
    const ajv = createAjv();
    ajv.addSchema(readSchemaFile('audit-event.schema.json') as object);
    checkpointValidator = compileSchemaFile<CheckpointEvent>(ajv, 'audit-checkpoint.schema.json');
  }
  if (!checkpointValidator(event)) {
    throw new Error(
      `event does not match schemas/audit-checkpoint.schema.json: ${formatAjvErrors(checkpointValidator.errors)}\n${JSON.stringify(event)}`,
    );
  }
  return event;
}

/** One journal line: an audit event (with its integrity block) or a checkpoint, each validated against its schema. */
function validateJournalLine(line: string, events: AuditEvent[], checkpoints: CheckpointEvent[]): void {
  const parsed = JSON.parse(line) as Record<string, unknown>;
  if (parsed.action === CHECKPOINT_ACTION) {
    checkpoints.push(validateCheckpoint(parsed));
    return;
  }
  if (parsed.auditChain === undefined) throw new Error(`journal event without its integrity block: ${line}`);
  events.push(validateEvent(parsed));
}

/** Waits (bounded) until a journal written by another process holds at least `count` events. */
export async function waitForJournal(dir: string, count: number, timeoutMs = 10_000): Promise<AuditEvent[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { events } = await readJournal(dir);
    if (events.length >= count || Date.now() > deadline) return events;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Everything in a journal directory: the audit events (one per call), the checkpoints (ceaudit.checkpoint.create)
 * and the raw text.
 */
export async function readJournal(dir: string): Promise<{ events: AuditEvent[]; checkpoints: CheckpointEvent[]; raw: string }> {
  const events: AuditEvent[] = [];
  const checkpoints: CheckpointEvent[] = [];
  let raw = '';
  let regions: string[] = [];
  try {
    regions = await readdir(dir);
  } catch {
    return { events, checkpoints, raw };
  }
  for (const region of regions.sort()) {
    const files = (await readdir(path.join(dir, region))).filter((f) => f.endsWith('.jsonl')).sort();
    for (const file of files) {
      const text = await readFile(path.join(dir, region, file), 'utf8');
      raw += text;
      for (const line of text.split('\n')) if (line.trim()) validateJournalLine(line, events, checkpoints);
    }
  }
  return { events, checkpoints, raw };
}

/** The journal's events, read once `caughtUp` says delivery has caught up (bounded waits). */
export function journalReaders(
  journalDir: string,
  caughtUp: () => Promise<void>,
): Pick<AuditHarness, 'events' | 'eventsFor' | 'waitForEvents'> {
  const events = async (): Promise<AuditEvent[]> => {
    await caughtUp();
    return (await readJournal(journalDir)).events;
  };
  return {
    events,
    eventsFor: async (transactionId, timeoutMs = 5000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = (await events()).filter((e) => e.transactionID === transactionId);
        if (found.length > 0 || Date.now() > deadline) return found;
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    waitForEvents: async (count, timeoutMs = 5000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = await events();
        if (found.length >= count || Date.now() > deadline) return found;
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

/** A sink for a logger's lines, and what it got so far. */
export function logCapture(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString('utf8');
      cb();
    },
  });
  return { stream, text: () => text };
}

export async function startHarness(env: Record<string, string> = {}): Promise<Harness> {
  const upstream = await startFakeCodeEngine();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'ce-audit-data-'));
  try {
    return await startGatewayFor(upstream, dataDir, env);
  } catch (err) {
    await upstream.close();
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/** What every front end's harness is configured with: the fake Code Engine, and its data under `dataDir`. */
export function harnessSettings(
  upstreamUrl: string,
  dataDir: string,
): { journalDir: string; spoolDir: string; settings: Record<string, string> } {
  const journalDir = path.join(dataDir, 'audit');
  const spoolDir = path.join(dataDir, 'spool');
  const settings = {
    CE_API_URL: upstreamUrl,
    CE_KUBE_API_URL: upstreamUrl,
    AT_FILE_DIR: journalDir,
    SPOOL_DIR: spoolDir,
    CE_ACCOUNT_ID: 'acc0123456789abcdef0123456789abcd',
    LOG_LEVEL: 'debug',
  };
  return { journalDir, spoolDir, settings };
}

async function startGatewayFor(upstream: FakeCodeEngine, dataDir: string, env: Record<string, string>): Promise<Harness> {
  const { journalDir, spoolDir, settings } = harnessSettings(upstream.url, dataDir);
  const config = loadConfig({ PORT: '0', ADMIN_PORT: '0', HOST: '127.0.0.1', ...settings, ...env });
  const captured = logCapture();
  const gateway = await Gateway.start(config, { logger: createLogger(config.logLevel, captured.stream) });
  return {
    upstream,
    gateway,
    url: gateway.proxyAddress.url,
    adminUrl: gateway.adminAddress.url,
    journalDir,
    spoolDir,
    logs: captured.text,
    ...journalReaders(journalDir, async () => {
      await gateway.delivery.flush(Date.now() + 5000);
    }),
    close: async () => {
      await gateway.stop();
      await upstream.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** An unsigned IAM-like access token with the given claims (the gateway decodes, it does not verify here). */
export function iamToken(claims: Record<string, unknown>): string {
  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${enc({ alg: 'RS256', kid: 'test' })}.${enc(claims)}.${Buffer.from('signature-not-checked').toString('base64url')}`;
}

export const USER_CLAIMS = {
  iam_id: 'IBMid-550006AB12',
  sub: 'auditor.alice@example.com',
  name: 'Alice Example',
  email: 'auditor.alice@example.com',
  account: { bss: 'f00dfeedf00dfeedf00dfeedf00dfeed' },
  grant_type: 'urn:ibm:params:oauth:grant-type:apikey',
  iss: 'https://iam.cloud.ibm.com/identity',
  iat: 1760000000,
  exp: 4102444800,
};
