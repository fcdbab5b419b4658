import type { RecordedEvent } from '../types';
import { canonicalJson, memberSlot } from './canonical-json';
import { CHAIN_FIELD } from './chain-block';
import type { UnchainedEvent } from './region-log';

/**
 * A recorded event as the chain takes it: canonical JSON and where its integrity block goes. The event builder
 * gives both; any other event (JSON.stringify'd by a library user, a test) is parsed and canonicalised here.
 */
export function unchainedEvent(event: RecordedEvent): UnchainedEvent {
  if (event.chainSlot !== undefined) {
    return { json: event.json, slot: event.chainSlot, timestampMs: event.timestampMs, severity: event.severity };
  }
  const parsed: unknown = JSON.parse(event.json);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('an audit event must be a JSON object');
  const object = parsed as Record<string, unknown>;
  if (Object.hasOwn(object, CHAIN_FIELD)) throw new Error(`the event already carries ${CHAIN_FIELD}`);
  const json = canonicalJson(object, 'replace');
  return { json, slot: memberSlot(object, json, CHAIN_FIELD, 'replace'), timestampMs: event.timestampMs, severity: event.severity };
}
