import { STATUS_CODES } from 'node:http';
import type { Json } from './redact';

export const MAX_REASON_LENGTH = 1024;

export function reasonPhrase(status: number): string {
  if (status === 499) return 'Client Closed Request';
  return STATUS_CODES[status] ?? 'Unknown Status';
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/**
 * The failure message of an error body: Code Engine's `errors[0].message`, a Kubernetes Status `message`,
 * IAM's `errorMessage`, or a plain `error`.
 */
export function failureMessageOf(body: Json | undefined): string | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const errors = body.errors;
  if (Array.isArray(errors) && errors.length > 0) {
    const first = errors[0];
    if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
      const message = text(first.message) ?? text(first.code);
      if (message) return message;
    }
  }
  const nested = body.error;
  if (nested !== null && typeof nested === 'object' && !Array.isArray(nested)) {
    const message = text(nested.message);
    if (message) return message;
  }
  return text(body.message) ?? text(body.errorMessage) ?? text(body.error_description) ?? text(body.error);
}

export function bounded(value: string, max = MAX_REASON_LENGTH): string {
  return value.length > max ? `${value.slice(0, max - 3)}...` : value;
}
