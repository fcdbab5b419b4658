import { v7 as uuidv7 } from 'uuid';
import type { GatewayError } from '../errors';
import type { RequestTarget } from '../http/request-target';
import { initiatorOf, type Identity } from '../identity/initiator';
import { canonicalJson, memberSlot } from '../integrity/canonical-json';
import { CHAIN_FIELD, INTEGRITY_BLOCK_MAX_BYTES } from '../integrity/chain-block';
import type { BodyCapture } from '../proxy/body-capture';
import type { RouteCatalog } from '../routing/catalog';
import {
  isReadMethod,
  type ActionEdition,
  type AuditEvent,
  type AuditReason,
  type NameSource,
  type Outcome,
  type RecordedEvent,
  type Region,
  type ResponseDataPolicy,
  type RouteMatch,
} from '../types';
import { parseCapturedBody, pointerString, type ParsedBody } from './body';
import { projectCrn } from './crn';
import { formatEventTime } from './event-time';
import { bounded, failureMessageOf, reasonPhrase } from './reason';
import type { Json, Redactor } from './redact';
import { severityFor } from './severity';

/** IBM's own text when an event would exceed the size limit. */
export const NOT_INCLUDED_TEXT = 'Information about the action is not included for performance and size reasons.';
export const MAX_EVENT_BYTES = 16 * 1024;
/** What the event's own fields may take: the integrity block the recorder adds must fit too. */
const MAX_FIELDS_BYTES = MAX_EVENT_BYTES - INTEGRITY_BLOCK_MAX_BYTES;
const MAX_NAME_LENGTH = 256;

/** Everything known about one proxied call when its event is built. */
export interface Exchange {
  transactionId: string;
  startedAt: number;
  method: string;
  target: RequestTarget;
  match: RouteMatch;
  region: Region;
  identity: Identity;
  /** With token verification on: the verified identity, awaited before the event is built. */
  pendingIdentity: Promise<Identity> | undefined;
  clientAddress: string;
  clientAddressType: 'IPv4' | 'IPv6';
  agent: string;
  requestBody: BodyCapture | undefined;
  requestContentType: string | undefined;
  /** Status the client received (from upstream, or the gateway's own error status). */
  status: number | undefined;
  responseBody: BodyCapture | undefined;
  responseContentType: string | undefined;
  /** Set when the exchange did not complete normally. */
  error: GatewayError | undefined;
  /** True when the response was never completed (client gone, upstream cut the body). */
  incomplete: boolean;
  /** Long-lived responses (watch, follow, upgrade): recorded when they start, without a response body. */
  streaming: boolean;
  /**
   * Set once the request is handed to Code Engine: what it asked may have happened, so its event is kept whatever the
   * disk does and the answer waits for it (see RecordOptions). Unset for a call the gateway refused itself.
   */
  forwarded?: boolean;
}

export interface EventBuilderOptions {
  catalog: RouteCatalog;
  redactor: Redactor;
  edition: ActionEdition;
  accountId: string | undefined;
  namespaceProjects: ReadonlyMap<string, string>;
  responseData: ResponseDataPolicy;
}

function clean(value: string | undefined): string {
  if (!value) return '';
  return value.replace(/[\x00-\x1f\x7f]/g, '').slice(0, MAX_NAME_LENGTH);
}

/**
 * Builds the Activity Tracker event of one exchange: redacted, bounded to 16 KB, serialized once, in canonical JSON
 * (RFC 8785; members in order as they are built, so the serialisation takes the fast path).
 */
export class EventBuilder {
  constructor(private readonly options: EventBuilderOptions) {}

  build(x: Exchange): RecordedEvent {
    const { catalog, redactor, edition } = this.options;
    const op = x.match.operation;
    const status = x.status;
    const outcome: Outcome = x.incomplete ? 'unknown' : status !== undefined && status < 400 ? 'success' : 'failure';

    const request: ParsedBody = op.recordsRequestBody ? parseCapturedBody(x.requestBody, x.requestContentType) : { kind: 'empty' };
    const recordResponse = !x.streaming && !op.omitResponse && wantsResponse(this.options.responseData, outcome, x.method);
    const responseBytes = x.responseBody?.total ?? 0;
    // A large body cannot fit the event anyway: parse it only when a name or a failure message must come from it.
    const responseTooLarge = responseBytes > 2 * MAX_EVENT_BYTES;
    const parseResponse =
      !x.streaming && (outcome !== 'success' || needsResponseName(op.targetName, op.project) || (recordResponse && !responseTooLarge));
    const response: ParsedBody = parseResponse ? parseCapturedBody(x.responseBody, x.responseContentType) : { kind: 'empty' };
    const requestJson = request.kind === 'json' ? request.value : undefined;
    const responseJson = response.kind === 'json' ? response.value : undefined;
    // What names the object: the JSON body, or the kind, name and namespace of a protobuf one (never recorded).
    const requestNames = request.kind === 'omitted' ? request.names : requestJson;
    const responseNames = response.kind === 'omitted' ? response.names : responseJson;

    // Names are read before redaction (redaction replaces values in place).
    const name = clean(this.resolve(op.targetName, x.match, requestNames, responseNames));
    let projectId = this.resolve(op.project, x.match, requestNames, responseNames);
    if (projectId && op.projectIsNamespace) projectId = this.options.namespaceProjects.get(projectId) ?? projectId;

    const reasonCode = status ?? 499;
    const reason: AuditReason =
      outcome === 'success'
        ? { reasonCode, reasonType: reasonPhrase(reasonCode) }
        : { reasonCode, reasonForFailure: this.failureReason(x, responseJson), reasonType: reasonPhrase(reasonCode) };

    const action = op.actions[edition];
    const actionObject = action.slice(action.indexOf('.') + 1, action.lastIndexOf('.'));
    const actionVerb = action.slice(action.lastIndexOf('.') + 1);
    const crn = projectCrn(catalog.service, x.region, x.identity.accountId ?? this.options.accountId, projectId);

    const requestData: Record<string, unknown> = {};
    if (request.kind === 'json') requestData.body = redactor.redactBody(request.value, op.secretBearing);
    else if (request.kind === 'omitted') requestData.bodyOmitted = request.reason;
    requestData.method = x.method;
    requestData.path = x.target.path;

    // Members in canonical order (responseData keeps its place while unset: undefined members are left out).
    const event: AuditEvent = {
      action,
      correlationId: x.transactionId,
      dataEvent: false,
      eventTime: formatEventTime(x.startedAt),
      eventType: 'activity',
      id: uuidv7(),
      initiator: initiatorOf(x.identity, x.clientAddress, x.clientAddressType, x.agent),
      logSourceCRN: crn,
      message: `${catalog.serviceDisplayName}: ${actionVerb} ${op.objectType}${name ? ` ${name}` : ''}${outcome === 'success' ? '' : ' -failure'}`,
      observer: { name: 'ActivityTracker' },
      outcome,
      reason,
      requestData,
      responseData: undefined,
      saveServiceCopy: true,
      severity: severityFor(op.severity, status),
      target: { id: crn, name, typeURI: `${catalog.service}/${actionObject}` },
      transactionID: x.transactionId,
      typeURI: 'http://schemas.dmtf.org/cloud/audit/1.0/event',
    };
    if (recordResponse && responseBytes > 0) {
      const redacted = responseJson !== undefined && !responseTooLarge ? redactor.redactBody(responseJson, op.secretBearing) : undefined;
      if (redacted !== undefined && redacted !== null && typeof redacted === 'object') event.responseData = redacted;
      else if (responseTooLarge || !x.responseBody?.complete) event.responseData = NOT_INCLUDED_TEXT;
    }
    const json = fitToLimit(event);
    return {
      id: event.id,
      region: x.region,
      eventTime: event.eventTime,
      timestampMs: x.startedAt,
      severity: event.severity,
      json,
      chainSlot: memberSlot(event as unknown as Record<string, unknown>, json, CHAIN_FIELD, 'replace'),
    };
  }

  private resolve(
    sources: readonly NameSource[],
    match: RouteMatch,
    body: Json | undefined,
    response: Json | undefined,
  ): string | undefined {
    for (const source of sources) {
      const colon = source.indexOf(':');
      const kind = source.slice(0, colon);
      const ref = source.slice(colon + 1);
      const value = kind === 'param' ? match.params[ref] : pointerString(kind === 'body' ? body : response, ref);
      if (value) return value;
    }
    return undefined;
  }

  private failureReason(x: Exchange, response: Json | undefined): string {
    const { redactor } = this.options;
    if (x.error) return bounded(redactor.redactText(x.error.message));
    const fromBody = failureMessageOf(response);
    const status = x.status ?? 499;
    return bounded(redactor.redactText(fromBody ?? `${status} ${reasonPhrase(status)}`));
  }
}

function wantsResponse(policy: ResponseDataPolicy, outcome: Outcome, method: string): boolean {
  switch (policy) {
    case 'all':
      return true;
    case 'changes':
      return outcome !== 'success' || !isReadMethod(method);
    case 'failures':
      return outcome !== 'success';
    case 'none':
      return false;
  }
}

function needsResponseName(...lists: ReadonlyArray<readonly NameSource[]>): boolean {
  return lists.some((list) => list.some((s) => s.startsWith('response:')));
}

/**
 * Serialize (canonical JSON, lone surrogates written as U+FFFD) within IBM's 16 KB less the integrity block's room:
 * responseData goes first, then requestData, replaced by IBM's text.
 */
export function fitToLimit(event: AuditEvent): string {
  const serialize = (): string => canonicalJson(event, 'replace');
  let json = serialize();
  if (json.length * 3 <= MAX_FIELDS_BYTES || Buffer.byteLength(json) <= MAX_FIELDS_BYTES) return json;
  if (event.responseData !== undefined) {
    event.responseData = NOT_INCLUDED_TEXT;
    json = serialize();
    if (Buffer.byteLength(json) <= MAX_FIELDS_BYTES) return json;
  }
  event.requestData = { bodyOmitted: NOT_INCLUDED_TEXT, method: event.requestData.method };
  json = serialize();
  if (Buffer.byteLength(json) <= MAX_FIELDS_BYTES) return json;
  // Only caller-chosen strings are left to blame; each is already bounded, so this is a last resort.
  event.reason.reasonForFailure &&= bounded(event.reason.reasonForFailure, 256);
  event.initiator.host.agent = bounded(event.initiator.host.agent, 64);
  return serialize();
}
