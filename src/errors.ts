/**
 * Every error the gateway can raise carries a stable code. `httpErrorFor` is the one place that turns a code
 * into the HTTP status and the body a client sees; nothing else writes error statuses.
 */
export type ErrorCode =
  | 'ERR_CONFIG_INVALID'
  | 'ERR_CATALOG_INVALID'
  | 'ERR_SCHEMA_INVALID'
  | 'ERR_STORAGE_UNUSABLE'
  | 'ERR_UPSTREAM_UNREACHABLE'
  | 'ERR_UPSTREAM_TIMEOUT'
  | 'ERR_UPSTREAM_TLS'
  | 'ERR_UPSTREAM_PROTOCOL'
  | 'ERR_UPSTREAM_ABORTED'
  | 'ERR_CLIENT_ABORTED'
  | 'ERR_BAD_REQUEST'
  | 'ERR_METHOD_NOT_ALLOWED'
  | 'ERR_PAYLOAD_TOO_LARGE'
  | 'ERR_HEADERS_TOO_LARGE'
  | 'ERR_REQUEST_TIMEOUT'
  | 'ERR_TOO_MANY_CONNECTIONS'
  | 'ERR_SPOOL_UNWRITABLE'
  | 'ERR_SPOOL_FULL'
  | 'ERR_AUDIT_CLOSED'
  | 'ERR_NOT_AUDITED'
  | 'ERR_INTERNAL';

export class GatewayError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}

interface HttpMapping {
  status: number;
  /** Code Engine style error code (clients and SDKs already parse `errors[0].code`). */
  apiCode: string;
}

const HTTP_BY_CODE: Record<ErrorCode, HttpMapping> = {
  ERR_CONFIG_INVALID: { status: 500, apiCode: 'gateway_misconfigured' },
  ERR_CATALOG_INVALID: { status: 500, apiCode: 'gateway_misconfigured' },
  ERR_SCHEMA_INVALID: { status: 500, apiCode: 'gateway_misconfigured' },
  ERR_STORAGE_UNUSABLE: { status: 500, apiCode: 'gateway_misconfigured' },
  ERR_UPSTREAM_UNREACHABLE: { status: 502, apiCode: 'upstream_unreachable' },
  ERR_UPSTREAM_TLS: { status: 502, apiCode: 'upstream_tls_error' },
  ERR_UPSTREAM_PROTOCOL: { status: 502, apiCode: 'upstream_protocol_error' },
  ERR_UPSTREAM_ABORTED: { status: 502, apiCode: 'upstream_aborted' },
  ERR_UPSTREAM_TIMEOUT: { status: 504, apiCode: 'upstream_timeout' },
  ERR_CLIENT_ABORTED: { status: 499, apiCode: 'client_closed_request' },
  ERR_BAD_REQUEST: { status: 400, apiCode: 'bad_request' },
  ERR_METHOD_NOT_ALLOWED: { status: 405, apiCode: 'method_not_allowed' },
  ERR_PAYLOAD_TOO_LARGE: { status: 413, apiCode: 'payload_too_large' },
  ERR_HEADERS_TOO_LARGE: { status: 431, apiCode: 'request_header_fields_too_large' },
  ERR_REQUEST_TIMEOUT: { status: 408, apiCode: 'request_timeout' },
  ERR_TOO_MANY_CONNECTIONS: { status: 503, apiCode: 'too_many_connections' },
  ERR_SPOOL_UNWRITABLE: { status: 503, apiCode: 'audit_spool_unwritable' },
  ERR_SPOOL_FULL: { status: 503, apiCode: 'audit_spool_full' },
  ERR_AUDIT_CLOSED: { status: 503, apiCode: 'audit_closed' },
  ERR_NOT_AUDITED: { status: 500, apiCode: 'audit_middleware_missing' },
  ERR_INTERNAL: { status: 500, apiCode: 'gateway_internal_error' },
};

export interface HttpError {
  status: number;
  body: string;
}

/**
 * The JSON body follows Code Engine's own error format, so SDKs and the CLI show the message unchanged, and
 * adds the transaction id so an operator can find the matching audit event.
 */
export function httpErrorFor(err: GatewayError, transactionId: string): HttpError {
  const { status, apiCode } = HTTP_BY_CODE[err.code];
  const body = JSON.stringify({
    errors: [{ code: apiCode, message: err.message }],
    trace: transactionId,
    transaction_id: transactionId,
    status_code: status,
  });
  return { status, body };
}

export function statusFor(code: ErrorCode): number {
  return HTTP_BY_CODE[code].status;
}

interface ErrorWithCode {
  code?: unknown;
  name?: unknown;
  message?: unknown;
  cause?: unknown;
}

function errorCodeOf(err: unknown): string {
  const e = err as ErrorWithCode | null;
  if (e && typeof e.code === 'string') return e.code;
  return '';
}

/** OpenSSL certificate verification results as Node reports them (X509_V_ERR_* without the prefix). */
const TLS_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);

function isTlsCode(code: string): boolean {
  return TLS_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_');
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

/**
 * Classify an error raised while talking to an upstream. The message names the upstream host and the network
 * cause; it never contains request headers (so never a token).
 */
export function upstreamError(err: unknown, upstreamHost: string): GatewayError {
  if (err instanceof GatewayError) return err;
  let code = errorCodeOf(err);
  const cause = (err as ErrorWithCode | null)?.cause;
  if (!code || code === 'UND_ERR_SOCKET') code = errorCodeOf(cause) || code;
  const detail = describe(err, code);
  if (TIMEOUT_CODES.has(code)) {
    return new GatewayError('ERR_UPSTREAM_TIMEOUT', `Code Engine upstream ${upstreamHost} timed out (${detail}).`, { cause: err });
  }
  if (isTlsCode(code)) {
    return new GatewayError('ERR_UPSTREAM_TLS', `TLS certificate of upstream ${upstreamHost} could not be verified (${detail}).`, {
      cause: err,
    });
  }
  if (UNREACHABLE_CODES.has(code)) {
    return new GatewayError('ERR_UPSTREAM_UNREACHABLE', `Code Engine upstream ${upstreamHost} is unreachable (${detail}).`, { cause: err });
  }
  return new GatewayError('ERR_UPSTREAM_PROTOCOL', `Call to Code Engine upstream ${upstreamHost} failed (${detail}).`, { cause: err });
}

function describe(err: unknown, code: string): string {
  const e = err as ErrorWithCode | null;
  const message = e && typeof e.message === 'string' ? e.message : String(err);
  const short = message.length > 200 ? `${message.slice(0, 200)}...` : message;
  return code && !short.includes(code) ? `${code}: ${short}` : short;
}
