/**
 * Public types of the Activity Tracker receiver: a local stand-in for the LogDNA (Mezmo) ingest API, the IBM
 * Cloud Logs ingest API and the IAM token endpoint, used by tests, benchmarks and the demo.
 */

/** An IBM Cloud region name as it appears in the receiver's paths, e.g. `us-south`. */
export type Region = string;

export type IngestApi = 'logdna' | 'cloud-logs';

/** Which part of the receiver a request was routed to. */
export type ReceiverApi = IngestApi | 'iam' | 'events' | 'unknown';

export interface ReceivedEvent {
  region: string;
  api: IngestApi;
  /** The event: the LogDNA `line` / Cloud Logs `text` parsed as JSON, or the string itself when it is not JSON. */
  event: unknown;
  /** The line / text exactly as stored (an object `text` is serialized). */
  raw: string;
  receivedAt: number;
  /** Everything else the sender said about the entry: app, level, hostname, applicationName, severity, timestamp ... */
  meta: Record<string, unknown>;
}

export interface ReceivedRequest {
  method: string;
  /** The path without the query string. */
  path: string;
  /** Query parameters (`apikey` redacted). */
  query: Record<string, string>;
  region: string | undefined;
  api: ReceiverApi;
  /** The status answered; 0 while unanswered and for requests never answered (hang, down, client gone). */
  status: number;
  /** Request headers; `authorization`, `proxy-authorization`, `apikey` and `cookie` are `[REDACTED]`. */
  headers: Record<string, string | string[] | undefined>;
  /** Body bytes read from the wire (compressed size; reading stops at the body limit). */
  bodyBytes: number;
  at: number;
}

export type LineLimitMode = 'truncate' | 'reject';

export interface ReceiverOptions {
  /** Default 0 (a free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Ingestion key accepted per region. A region without a key answers 401 on its LogDNA API. */
  logdnaKeys?: Record<Region, string>;
  /** API keys the IAM endpoint exchanges for tokens. */
  iamApiKeys?: string[];
  /** Lifetime of issued tokens, default 3600. Fractions are allowed (tests); the reply rounds up. */
  tokenTtlSeconds?: number;
  /** Request body limit for both ingest APIs, compressed and decompressed; default 10 MiB. */
  maxBodyBytes?: number;
  /** LogDNA line limit in UTF-8 bytes, default 16 KiB. */
  maxLineBytes?: number;
  /** What a LogDNA line over `maxLineBytes` does: `reject` the request with 413 (default) or `truncate` the line. */
  lineLimitMode?: LineLimitMode;
  /** Cloud Logs limit per entry text (serialized, UTF-8 bytes), default 32 KiB; over it the request gets 413. */
  cloudLogsMaxLogBytes?: number;
}

export type FailureStatus = 500 | 502 | 503 | 504 | 400 | 401 | 403 | 404 | 413;

/** `times`: for the next N requests to the affected ingest APIs, then the behaviour is removed (default: forever). */
export type Behaviour =
  | { mode: 'ok' }
  | { mode: 'status'; status: FailureStatus; times?: number }
  | { mode: 'throttle'; retryAfterSeconds: number; times?: number }
  | { mode: 'partial'; rejectEvery: number; status?: number; times?: number }
  | { mode: 'hang'; times?: number }
  | { mode: 'down' };

export interface Receiver {
  /** `http://<host>:<port>` */
  url: string;
  port: number;
  /** `${url}/logdna/{region}/logs/ingest` */
  logdnaUrlTemplate: string;
  /** `${url}/cloud-logs/{region}/logs/v1/singles` */
  cloudLogsUrlTemplate: string;
  /** `${url}/identity/token` */
  iamTokenUrl: string;
  /** Every event accepted (of one region, or all), in arrival order. */
  events(region?: string): ReceivedEvent[];
  /** Every request received and the status answered, in arrival order. */
  readonly requests: ReceivedRequest[];
  /** IAM tokens handed out since start (or the last `reset`). */
  readonly tokensIssued: number;
  /**
   * Behaviour of both ingest APIs of one region, or of all regions (`'*'`, which also clears every per-region
   * behaviour). Each call replaces the previous behaviour for that region.
   */
  behave(region: Region | '*', b: Behaviour): void;
  /** Clears events, requests, behaviours and the `tokensIssued` count (issued tokens stay valid). */
  reset(): void;
  /** Closes the server and every socket, hanging requests included. */
  close(): Promise<void>;
}
