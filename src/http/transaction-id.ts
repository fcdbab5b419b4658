import type { IncomingHttpHeaders } from 'node:http';
import { v4 as uuidv4 } from 'uuid';

/** Headers a caller may use to carry its own transaction id, in order of preference. */
export const TRANSACTION_ID_HEADERS = ['x-transaction-id', 'x-correlation-id', 'x-request-id', 'x-global-transaction-id'] as const;

const WELL_FORMED = /^[A-Za-z0-9._:-]{1,128}$/;

/** The first well-formed id the caller sent, else a new UUID. Malformed values are ignored, never echoed. */
export function transactionIdFor(headers: IncomingHttpHeaders): string {
  for (const name of TRANSACTION_ID_HEADERS) {
    const value = headers[name];
    if (typeof value === 'string' && WELL_FORMED.test(value)) return value;
  }
  return uuidv4();
}
