/**
 * Errors the receiver answers with. Each carries a stable code; `statusOf` is the one place that maps a code to
 * the HTTP status. Each API formats the body in its own shape.
 */
export type ReceiverErrorCode =
  | 'ERR_BAD_REQUEST'
  | 'ERR_UNAUTHORIZED'
  | 'ERR_NOT_FOUND'
  | 'ERR_METHOD_NOT_ALLOWED'
  | 'ERR_BODY_TOO_LARGE'
  | 'ERR_LINE_TOO_LARGE'
  | 'ERR_UNSUPPORTED_MEDIA_TYPE';

const STATUS_BY_CODE: Record<ReceiverErrorCode, number> = {
  ERR_BAD_REQUEST: 400,
  ERR_UNAUTHORIZED: 401,
  ERR_NOT_FOUND: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_BODY_TOO_LARGE: 413,
  ERR_LINE_TOO_LARGE: 413,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
};

export class ReceiverError extends Error {
  readonly code: ReceiverErrorCode;

  constructor(code: ReceiverErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReceiverError';
    this.code = code;
  }

  get status(): number {
    return statusOf(this.code);
  }
}

export function statusOf(code: ReceiverErrorCode): number {
  return STATUS_BY_CODE[code];
}
