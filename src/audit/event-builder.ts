import { v7 as uuidv7 } from 'uuid';
import type { GatewayError } from '../errors';
import type { RequestTarget } from '../http/request-target';
import { initiatorOf, type Identity } from '../identity/initiator';
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

/** Builds the Activity Tracker event of one exchange: redacted, bounded to 16 KB, serialized once. */
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

    // Names are read before redaction (redaction replaces values in place).
    const name = clean(this.resolve(op.targetName, x.match, requestJson, responseJson));
    let projectId = this.resolve(op.project, x.match, requestJson, responseJson);
    if (projectId && op.projectIsNamespace) projectId = this.options.namespaceProjects.get(projectId) ?? projectId;

    const reason: AuditReason = { reasonCode: status ?? 499, reasonType: reasonPhrase(status ?? 499) };
    if (outcome !== 'success') reason.reasonForFailure = this.failureReason(x, responseJson);

    const action = op.actions[edition];
    const actionObject = action.slice(action.indexOf('.') + 1, action.lastIndexOf('.'));
    const actionVerb = action.slice(action.lastIndexOf('.') + 1);
    const crn = projectCrn(catalog.service, x.region, x.identity.accountId ?? this.options.accountId, projectId);

    const requestData: Record<string, unknown> = { method: x.method, path: x.target.path };
    if (request.kind === 'json') requestData.body = redactor.redactBody(request.value, op.secretBearing);
    else if (request.kind === 'omitted') requestData.bodyOmitted = request.reason;

    const event: AuditEvent = {
      id: uuidv7(),
      eventType: 'activity',
      typeURI: 'http://schemas.dmtf.org/cloud/audit/1.0/event',
      eventTime: formatEventTime(x.startedAt),
      action,
      outcome,
      reason,
      severity: severityFor(op.severity, status),
      message: `${catalog.serviceDisplayName}: ${actionVerb} ${op.objectType}${name ? ` ${name}` : ''}${outcome === 'success' ? '' : ' -failure'}`,
      initiator: initiatorOf(x.identity, x.clientAddress, x.clientAddressType, x.agent),
      target: { id: crn, name, typeURI: `${catalog.service}/${actionObject}` },
      observer: { name: 'ActivityTracker' },
      transactionID: x.transactionId,
      correlationId: x.transactionId,
      requestData,
      dataEvent: false,
      logSourceCRN: crn,
      saveServiceCopy: true,
    };
    if (recordResponse && responseBytes > 0) {
      const redacted = responseJson !== undefined && !responseTooLarge ? redactor.redactBody(responseJson, op.secretBearing) : undefined;
      if (redacted !== undefined && redacted !== null && typeof redacted === 'object') event.responseData = redacted;
      else if (responseTooLarge || !x.responseBody?.complete) event.responseData = NOT_INCLUDED_TEXT;
    }
    return {
      id: event.id,
      region: x.region,
      eventTime: event.eventTime,
      timestampMs: x.startedAt,
      severity: event.severity,
      json: fitToLimit(event),
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

/** Serialize within IBM's 16 KB: responseData goes first, then requestData, replaced by IBM's text. */
export function fitToLimit(event: AuditEvent): string {
  let json = JSON.stringify(event);
  if (json.length * 3 <= MAX_EVENT_BYTES || Buffer.byteLength(json) <= MAX_EVENT_BYTES) return json;
  if (event.responseData !== undefined) {
    event.responseData = NOT_INCLUDED_TEXT;
    json = JSON.stringify(event);
    if (Buffer.byteLength(json) <= MAX_EVENT_BYTES) return json;
  }
  event.requestData = { method: event.requestData.method, bodyOmitted: NOT_INCLUDED_TEXT };
  json = JSON.stringify(event);
  if (Buffer.byteLength(json) <= MAX_EVENT_BYTES) return json;
  // Only caller-chosen strings are left to blame; each is already bounded, so this is a last resort.
  event.reason.reasonForFailure &&= bounded(event.reason.reasonForFailure, 256);
  event.initiator.host.agent = bounded(event.initiator.host.agent, 64);
  return JSON.stringify(event);
}
