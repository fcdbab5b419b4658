import { promisify } from 'node:util';
import { gzip as gzipCallback, constants as zlib } from 'node:zlib';
import { Agent, request } from 'undici';
import type { SpoolRecord } from '../../spool/types';
import type { Severity } from '../../types';
import {
  closeAgent,
  discard,
  failureResult,
  identityScrub,
  isRetryableStatus,
  networkResult,
  readText,
  readTextSafely,
  serverMessage,
  type Scrub,
} from './http-result';
import type { SendResult, Sink, SinkBatch } from './sink';

const gzip = promisify(gzipCallback);

export interface LogdnaSinkOptions {
  region: string;
  /** The region's ingest URL, e.g. `https://logs.us-south.logging.cloud.ibm.com/logs/ingest`. */
  url: string;
  ingestionKey: string;
  /** The `hostname` query parameter (required by the API, at most 256 characters). */
  hostname: string;
  /** Applied to every reason (the worker scrubs again; this keeps the key out even if it does not). */
  scrub?: Scrub;
  /** Bodies at least this large are sent gzip-compressed; `false` never compresses. Default: false (see below). */
  gzipMinBytes?: number | false;
}

const API = 'LogDNA ingest';
const LEVEL: Record<Severity, string> = { normal: 'INFO', warning: 'WARN', critical: 'ERROR' };
/** The API's body limit (10 MB); a body over it is split by the worker without a round trip. */
export const LOGDNA_MAX_BODY_BYTES = 10_000_000;
/** A 207 carries one status per line: up to 5000 small objects. */
const MULTI_STATUS_BODY_LIMIT = 4 * 1024 * 1024;

/**
 * Activity Tracker hosted on LogDNA (Mezmo): `POST <url>?hostname=...&now=...` with `{"lines":[...]}`, each
 * line the event as a JSON string. 200 delivered; 207 per-line statuses; 413 too large; 429 and 5xx retried;
 * other 4xx refused.
 *
 * Compression is off by default: against the local receiver 500-event batches of 1.5 KB events went at
 * ~17-20k events/s uncompressed and ~14-16k with gzip (level 1): on loopback the CPU costs more than the
 * bytes saved. Over a slow link set `gzipMinBytes` (e.g. 64 KiB): audit events compress several-fold.
 */
export class LogdnaSink implements Sink {
  readonly name = 'logdna' as const;
  readonly maxBatchEvents = 5000;
  /**
   * Sum of event sizes. On the wire each event is escaped as a JSON string and wrapped (~105 bytes per line):
   * x1.18 for typical 1.5 KB events, so 9 MiB of events would be ~11 MB, over the limit. 7 MiB leaves room for
   * ~30% growth; a body that still ends up over 10 MB is answered too-large before sending.
   */
  readonly maxBatchBytes = 7 * 1024 * 1024;
  private readonly agent: Agent;
  private readonly target: string;
  private readonly headers: Record<string, string>;
  private readonly lineTail: string;
  private readonly scrub: Scrub;
  private readonly gzipMinBytes: number | false;

  constructor(options: LogdnaSinkOptions) {
    this.agent = new Agent({ keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000, connect: { rejectUnauthorized: true } });
    this.target = `${options.url}${options.url.includes('?') ? '&' : '?'}hostname=${encodeURIComponent(options.hostname)}`;
    this.headers = {
      authorization: `Basic ${Buffer.from(`${options.ingestionKey}:`).toString('base64')}`,
      apikey: options.ingestionKey,
      'content-type': 'application/json; charset=UTF-8',
    };
    this.lineTail = `,"meta":${JSON.stringify({ region: options.region })}}`;
    this.scrub = options.scrub ?? identityScrub;
    this.gzipMinBytes = options.gzipMinBytes ?? false;
  }

  /** The request body: built by concatenation, each event embedded as a JSON string. */
  body(records: readonly SpoolRecord[]): string {
    let body = '{"lines":[';
    for (let i = 0; i < records.length; i++) {
      const r = records[i] as SpoolRecord;
      const timestamp = Number.isFinite(r.timestampMs) ? Math.trunc(r.timestampMs) : Date.now();
      body += `${i === 0 ? '' : ','}{"timestamp":${timestamp},"line":${JSON.stringify(r.json)},"app":"ce-audit-gateway","level":"${LEVEL[r.severity] ?? 'INFO'}"${this.lineTail}`;
    }
    return `${body}]}`;
  }

  async send(batch: SinkBatch, signal: AbortSignal): Promise<SendResult> {
    if (batch.records.length === 0) return { kind: 'delivered' };
    const text = this.body(batch.records);
    const size = Buffer.byteLength(text);
    if (size > LOGDNA_MAX_BODY_BYTES) {
      return { kind: 'too-large', reason: `${API} body would be ${size} bytes, over the ${LOGDNA_MAX_BODY_BYTES}-byte limit` };
    }
    try {
      const compress = this.gzipMinBytes !== false && size >= this.gzipMinBytes;
      const body = compress ? await gzip(text, { level: zlib.Z_BEST_SPEED }) : text;
      const headers = compress ? { ...this.headers, 'content-encoding': 'gzip' } : this.headers;
      const res = await request(`${this.target}&now=${Date.now()}`, { method: 'POST', headers, body, signal, dispatcher: this.agent });
      if (res.statusCode === 207) return await this.multiStatus(res.body, batch.records.length);
      if (res.statusCode >= 200 && res.statusCode < 300) {
        await discard(res.body);
        return { kind: 'delivered' };
      }
      return failureResult(API, res.statusCode, res.headers, await readTextSafely(res.body), this.scrub);
    } catch (err) {
      return networkResult(API, err, this.scrub);
    }
  }

  /** 207: `{"status":[{"status":200},{"status":400,"error":"..."}, ...]}`, one per line, in order. */
  private async multiStatus(body: Parameters<typeof readText>[0], count: number): Promise<SendResult> {
    let statuses: unknown;
    try {
      statuses = (JSON.parse(await readText(body, MULTI_STATUS_BODY_LIMIT)) as { status?: unknown }).status;
    } catch {
      statuses = undefined;
    }
    if (!Array.isArray(statuses) || statuses.length !== count) {
      return { kind: 'retry', reason: `${API} answered 207 Multi-Status with an unreadable per-line status list`, status: 207 };
    }
    const failed: Array<{ index: number; retry: boolean; reason: string; status: number }> = [];
    for (let index = 0; index < count; index++) {
      const entry: unknown = statuses[index];
      const o = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>) : { status: entry };
      const status = typeof o.status === 'number' ? o.status : Number(o.status);
      if (!Number.isInteger(status)) {
        return { kind: 'retry', reason: `${API} answered 207 Multi-Status with an unreadable status for line ${index}`, status: 207 };
      }
      if (status >= 200 && status < 300) continue;
      const message = typeof o.error === 'string' ? serverMessage(o.error) : typeof o.message === 'string' ? serverMessage(o.message) : '';
      const reason = this.scrub(`${API} refused the line with status ${status}${message ? `: ${message}` : ''}`);
      failed.push({ index, retry: isRetryableStatus(status), reason, status });
    }
    return failed.length === 0 ? { kind: 'delivered' } : { kind: 'partial', failed };
  }

  close(): Promise<void> {
    return closeAgent(this.agent);
  }
}
