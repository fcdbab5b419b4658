/** What both ingest API handlers get, and helpers they share. */
import type { BodyProgress } from './body';
import type { Limits } from './options';
import type { ReceivedEvent } from './types';

/** The `partial` behaviour: every Nth entry of the request is rejected (LogDNA) or dropped (Cloud Logs). */
export interface PartialRejection {
  rejectEvery: number;
  status: number;
}

export interface IngestContext {
  region: string;
  limits: Limits;
  /** Accepted events are appended here. */
  events: ReceivedEvent[];
  partial: PartialRejection | undefined;
  progress: BodyProgress;
}

export const HOUR_MS = 60 * 60 * 1000;

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The event inside a line / text: its JSON value, or the string itself when it is not JSON. */
export function parseEvent(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** True when the 0-based entry `index` is one the `partial` behaviour rejects. */
export function partiallyRejected(partial: PartialRejection | undefined, index: number): boolean {
  return partial !== undefined && (index + 1) % partial.rejectEvery === 0;
}

/** Cuts a string to at most `maxBytes` UTF-8 bytes without splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end -= 1;
  return bytes.subarray(0, end).toString('utf8');
}
