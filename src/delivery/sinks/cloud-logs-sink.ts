import { hostname as osHostname } from 'node:os';
import { Agent, request } from 'undici';
import type { SpoolRecord } from '../../spool/types';
import type { Severity } from '../../types';
import { closeAgent, discard, failureResult, identityScrub, networkResult, readTextSafely, serverMessage, type Scrub } from './http-result';
import { IamTokenError, type IamTokenProvider } from './iam-token';
import type { SendResult, Sink, SinkBatch } from './sink';

export interface CloudLogsSinkOptions {
  region: string;
  /** `https://<instance-guid>.ingress.<region>.logs.cloud.ibm.com/logs/v1/singles` */
  url: string;
  tokens: IamTokenProvider;
  application: string;
  subsystem: string;
  /** Default: this machine's host name. */
  computerName?: string;
  scrub?: Scrub;
}

const API = 'Cloud Logs ingest';

/**
 * Activity Tracker severity on the Cloud Logs scale (1 debug, 2 verbose, 3 info, 4 warning, 5 error,
 * 6 critical): normal -> 3 info, warning -> 4 warning, critical -> 5 error. Critical is kept below 6 because
 * an audit event records an action, not a failure of the system; 5 still puts it in every error view.
 */
export const CLOUD_LOGS_SEVERITY: Record<Severity, number> = { normal: 3, warning: 4, critical: 5 };

/**
 * IBM Cloud Logs: `POST <url>` with a JSON array of log entries, the event itself (a JSON object) as `text`,
 * and an IAM bearer token. A 401 gets one fresh token and one more try within the same send. 403 (no Sender
 * role) and other 4xx are refused, 413 too large, 429 / 5xx / network errors retried.
 *
 * A 200 may report dropped entries (`{"dropped":N,"reason":"..."}`) without saying which ones, so the batch
 * counts as delivered and the drops are counted in `droppedReported` (reason in `lastDroppedReason`).
 */
export class CloudLogsSink implements Sink {
  readonly name = 'cloud-logs' as const;
  readonly maxBatchEvents = 2000;
  /** The API wants about 2 MB per request; the entry wrapper adds ~150 bytes per event. */
  readonly maxBatchBytes = Math.floor(1.9 * 1024 * 1024);
  /** Entries the API said it dropped while answering 200 (for metrics / health). */
  droppedReported = 0;
  lastDroppedReason: string | undefined;
  private readonly agent: Agent;
  private readonly prefix: string;
  private readonly scrub: Scrub;

  constructor(private readonly options: CloudLogsSinkOptions) {
    this.agent = new Agent({ keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000, connect: { rejectUnauthorized: true } });
    const names = {
      applicationName: options.application,
      subsystemName: options.subsystem,
      computerName: options.computerName ?? osHostname(),
    };
    this.prefix = `${JSON.stringify(names).slice(0, -1)},"severity":`;
    this.scrub = options.scrub ?? identityScrub;
  }

  /** The request body; each event is valid JSON already and is embedded as is (no parse, no escaping). */
  body(records: readonly SpoolRecord[]): string {
    let body = '[';
    for (let i = 0; i < records.length; i++) {
      const r = records[i] as SpoolRecord;
      const timestamp = Number.isFinite(r.timestampMs) ? Math.trunc(r.timestampMs) : Date.now();
      body += `${i === 0 ? '' : ','}${this.prefix}${CLOUD_LOGS_SEVERITY[r.severity] ?? 3},"timestamp":${timestamp},"text":${r.json}}`;
    }
    return `${body}]`;
  }

  async send(batch: SinkBatch, signal: AbortSignal): Promise<SendResult> {
    if (batch.records.length === 0) return { kind: 'delivered' };
    const body = this.body(batch.records);
    let result = await this.attempt(body, signal);
    if (result === 'unauthorized') result = await this.attempt(body, signal);
    if (result === 'unauthorized') {
      return { kind: 'rejected', reason: `${API} answered 401 Unauthorized twice, with a fresh IAM token the second time`, status: 401 };
    }
    return result;
  }

  private async attempt(body: string, signal: AbortSignal): Promise<SendResult | 'unauthorized'> {
    let token: string;
    try {
      token = await this.options.tokens.token(signal);
    } catch (err) {
      if (err instanceof IamTokenError) {
        const reason = this.scrub(`no IAM token for Cloud Logs: ${err.message}`);
        return err.retryable ? { kind: 'retry', reason, status: err.status } : { kind: 'rejected', reason, status: err.status };
      }
      return networkResult('IAM token', err, this.scrub);
    }
    try {
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' };
      const res = await request(this.options.url, { method: 'POST', headers, body, signal, dispatcher: this.agent });
      const status = res.statusCode;
      if (status === 401) {
        await discard(res.body);
        this.options.tokens.invalidate(token);
        return 'unauthorized';
      }
      if (status >= 200 && status < 300) {
        this.countDrops(await readTextSafely(res.body));
        return { kind: 'delivered' };
      }
      const result = failureResult(API, status, res.headers, await readTextSafely(res.body), this.scrub);
      if (status === 403 && result.kind === 'rejected') result.reason += ' (the API key needs the Sender role on the Cloud Logs instance)';
      return result;
    } catch (err) {
      return networkResult(API, err, this.scrub);
    }
  }

  private countDrops(text: string): void {
    if (text.trim() === '') return;
    try {
      const parsed = JSON.parse(text) as { dropped?: unknown };
      const dropped = Number(parsed.dropped ?? 0);
      if (Number.isFinite(dropped) && dropped > 0) {
        this.droppedReported += dropped;
        this.lastDroppedReason = this.scrub(serverMessage(text));
      }
    } catch {
      // a 200 without a readable body: nothing to count
    }
  }

  close(): Promise<void> {
    return closeAgent(this.agent);
  }
}
