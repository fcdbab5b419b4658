/** Domain types shared by every stage: request -> route match -> proxy -> event -> redact -> record. */

export type Region = 'us-south' | 'us-east' | 'br-sao' | 'ca-tor' | 'eu-de' | 'eu-gb' | 'eu-es' | 'jp-tok' | 'jp-osa' | 'au-syd' | 'in-che';

export type ActionEdition = '2020' | 'current';

export type UpstreamName = 'api' | 'kube';

export type Severity = 'normal' | 'warning' | 'critical';

export type Outcome = 'success' | 'failure' | 'unknown';

/**
 * Which events carry the redacted response body (AUDIT_RESPONSE_DATA). `changes`: calls that may change
 * something (every method but GET, HEAD and OPTIONS) and every failure, as AWS CloudTrail records
 * responseElements only for actions that change state.
 */
export type ResponseDataPolicy = 'all' | 'changes' | 'failures' | 'none';

/** Methods that only read: their calls never change anything in Code Engine. */
const READ_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

export function isReadMethod(method: string): boolean {
  return READ_METHODS.has(method);
}

/** Where a target's name is read from, in order: a path parameter, the request body, or the response body. */
export type NameSource = `param:${string}` | `body:${string}` | `response:${string}`;

/** One method of one route, after the catalog has been compiled. */
export interface RouteOperation {
  method: string;
  /** Canonical verb: create, read, list, update, delete, or a specific one such as exec. */
  verb: string;
  /** Object type in canonical spelling (application, configmap, pods, ...). */
  objectType: string;
  /** Action names per edition. */
  actions: Record<ActionEdition, string>;
  /** Where target.name comes from. */
  targetName: readonly NameSource[];
  /** Where the project id (or Kubernetes namespace) comes from. */
  project: readonly NameSource[];
  /** True when the project reference is a Kubernetes namespace (mapped through CE_NAMESPACE_MAP). */
  projectIsNamespace: boolean;
  severity: Severity;
  /** Request body is recorded in requestData (creates and updates). */
  recordsRequestBody: boolean;
  /** The body carries secret values (secret data, kubeconfig): stricter redaction. */
  secretBearing: boolean;
  /** The response is itself a credential and is never recorded. */
  omitResponse: boolean;
  /** Operation id from the API definition, when there is one. */
  operationId: string | undefined;
  /** Matched by a generic rule rather than a specific catalog entry. */
  generic: boolean;
}

export interface RouteMatch {
  operation: RouteOperation;
  upstream: UpstreamName;
  /** Decoded path parameters. */
  params: Readonly<Record<string, string>>;
}

export interface Initiator {
  id: string;
  name: string;
  typeURI: string;
  credential: { type: string; verified: boolean };
  host: { address: string; addressType: 'IPv4' | 'IPv6'; agent: string };
  authnId?: string;
  authnName?: string;
}

export interface AuditReason {
  reasonCode: number;
  reasonType: string;
  reasonForFailure?: string;
}

/** An IBM Activity Tracker event (CADF-based). See schemas/audit-event.schema.json. */
export interface AuditEvent {
  id: string;
  eventType: 'activity';
  typeURI: 'http://schemas.dmtf.org/cloud/audit/1.0/event';
  eventTime: string;
  action: string;
  outcome: Outcome;
  reason: AuditReason;
  severity: Severity;
  message: string;
  initiator: Initiator;
  target: { id: string; name: string; typeURI: string };
  observer: { name: 'ActivityTracker' };
  transactionID: string;
  correlationId: string;
  requestData: Record<string, unknown>;
  responseData?: Record<string, unknown> | unknown[] | string;
  dataEvent: false;
  logSourceCRN: string;
  saveServiceCopy: boolean;
}

/** Serialized event with what delivery needs to route it without re-parsing. */
export interface RecordedEvent {
  id: string;
  region: Region;
  eventTime: string;
  /** eventTime as epoch milliseconds. */
  timestampMs: number;
  severity: Severity;
  /**
   * The event as one line of JSON, no trailing newline, at most 16 KB with its integrity block. The event builder
   * writes it canonical (RFC 8785) and says where the integrity block goes (`chainSlot`, see
   * src/integrity/canonical-json.ts memberSlot); without `chainSlot` the recorder canonicalises it first.
   */
  json: string;
  chainSlot?: number;
}
