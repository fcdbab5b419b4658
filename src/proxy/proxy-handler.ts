import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BlockList, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Exchange } from '../audit/event-builder';
import type { ClientLimits } from '../config';
import { GatewayError, httpErrorFor } from '../errors';
import { clientAddressOf, peerAddressOf, type ClientAddress } from '../http/client-address';
import { writeRawErrorReply } from '../http/raw-reply';
import { clientErrorRefusal, refusalOf, requestLineOf } from '../http/request-checks';
import { parseRequestTarget, type RequestTarget } from '../http/request-target';
import { transactionIdFor } from '../http/transaction-id';
import { UNKNOWN_INITIATOR, type IdentityResolver } from '../identity/initiator';
import type { RouteCatalog } from '../routing/catalog';
import type { Region } from '../types';
import { SocketResponse, type ClientResponse } from './client-response';
import { ProxyCall } from './proxy-call';
import type { ProxyContext } from './proxy-context';
import type { Upstreams } from './upstreams';

/** Where a call goes: the pool of a region's upstream. */
export interface UpstreamLookup {
  get: Upstreams['get'];
}

/**
 * Which requests a front end serves, when it is not the whole server (the audit middleware mounted under a path
 * in an app): the standalone listener has none and serves every request.
 */
export interface RequestScope {
  /** The request target as the catalog and the upstream see it (the mount path removed); undefined: not ours. */
  localUrl(url: string): string | undefined;
}

export interface ProxyHandlerDeps {
  ctx: ProxyContext;
  catalog: RouteCatalog;
  upstreams: UpstreamLookup;
  identities: IdentityResolver;
  /** Region of calls without a /regions/<region>/ prefix. */
  defaultRegion: Region;
  /** Every configured region. */
  regions: ReadonlySet<Region>;
  trustedProxies: BlockList | undefined;
  limits: ClientLimits;
  /** Requests refused by Node's parser outside this scope are answered, not audited. Default: every request. */
  scope?: RequestScope;
}

const MAX_AGENT_LENGTH = 256;
const REGION_PREFIX = 'regions';
const STREAMING_QUERY = /[?&](watch|follow)=(true|1)(&|$)/;

function unknownRegion(wanted: string, regions: ReadonlySet<Region>): GatewayError {
  const shown = /^[a-z]{2}-[a-z]{2,8}$/.test(wanted) ? `"${wanted}"` : 'in the path';
  return new GatewayError(
    'ERR_BAD_REQUEST',
    `The region ${shown} is not configured on this gateway. Configured regions: ${[...regions].join(', ')} (CE_REGIONS).`,
  );
}

function agentOf(req: IncomingMessage): string {
  const agent = req.headers['user-agent'];
  if (!agent) return '';
  return agent.length > MAX_AGENT_LENGTH ? agent.slice(0, MAX_AGENT_LENGTH) : agent;
}

/** What the handlers made of a request target: where it goes, or why it is refused. */
export interface Routed {
  target: RequestTarget;
  region: Region;
  refused: GatewayError | undefined;
}

export interface ProxyHandlers {
  /** The proxy listener's 'request' handler. */
  onRequest: (req: IncomingMessage, res: ServerResponse) => void;
  /** The proxy listener's 'upgrade' handler (kubectl exec, attach, port-forward; websockets). */
  onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** The 'connect' handler: CONNECT is refused (405), audited: the gateway is no forward proxy. */
  onConnect: (req: IncomingMessage, socket: Duplex) => void;
  /** The 'clientError' handler: requests Node's parser refused are answered with a clear status and audited. */
  onClientError: (err: Error, socket: Duplex) => void;
  /** The 'connection' handler: counts connections for MAX_CONNECTIONS. */
  onConnection: (socket: Socket) => void;
  /** Normalises a request target and strips a region prefix (every front end routes with this). */
  route: (url: string) => Routed;
  /**
   * The call's exchange (transaction id, route match, region, caller) and the refusal it gets before anything is
   * forwarded, if any: the same intake for the listener and the audit middleware.
   */
  intake: (req: IncomingMessage, routed: Routed) => Intake;
  /** Marks the call a connection is serving, until its response closes (see onClientError). */
  track: (req: IncomingMessage, res: { on(event: 'close', listener: () => void): unknown }, call: ActiveCall) => void;
}

/** A call in progress on a connection, as a parse error in the rest of its request (a bad chunk) must end it. */
export interface ActiveCall {
  /** True once the whole request (head and body) was read from the client. */
  readonly requestComplete: boolean;
  /** Ends the call with the parser's refusal: its one event says so, and the client gets it on the raw socket. */
  abortMalformed(error: GatewayError, socket: Duplex): void;
  /** Runs `done` once this call's response is over (sent, cut, or never to be sent). */
  whenFinished(done: () => void): void;
}

export interface Intake {
  x: Exchange;
  refused: GatewayError | undefined;
}

/** request -> checks -> route match -> proxy call (-> event -> record), for every way a request arrives. */
export function createProxyHandlers(deps: ProxyHandlerDeps): ProxyHandlers {
  const { ctx, catalog, upstreams, identities, defaultRegion, regions, trustedProxies, limits, scope } = deps;
  let connections = 0;
  /** The call each connection is serving, so a parse error in the middle of a body ends that call's event. */
  const active = new WeakMap<Duplex, ActiveCall>();

  const track: ProxyHandlers['track'] = (req, res, call) => {
    const socket = req.socket;
    active.set(socket, call);
    res.on('close', () => {
      if (active.get(socket) === call) active.delete(socket);
    });
  };

  /** Normalise the target and strip a region prefix; every refusal is kept with a target to audit it by. */
  const route = (url: string): Routed => {
    let target: RequestTarget;
    let refused: GatewayError | undefined;
    try {
      target = parseRequestTarget(url);
    } catch (err) {
      refused = err instanceof GatewayError ? err : new GatewayError('ERR_BAD_REQUEST', 'The request target is malformed.');
      // Audit the refusal against the path as sent, split but not decoded, and never forward it.
      const rawPath = url.split('?')[0]?.slice(0, 1024) ?? '';
      target = { path: rawPath, segments: rawPath.split('/').filter(Boolean), search: '' };
    }
    let region = defaultRegion;
    if (target.segments[0] === REGION_PREFIX && !refused) {
      // /regions/<region>/...: that region's upstreams and Activity Tracker; the prefix is not forwarded.
      const wanted = target.segments[1] ?? '';
      const rest = target.segments.slice(2);
      if (regions.has(wanted as Region)) region = wanted as Region;
      else refused = unknownRegion(wanted, regions);
      target = { path: `/${rest.join('/')}`, segments: rest, search: target.search };
    }
    return { target, region, refused };
  };

  const exchange = (method: string, routed: Routed, transactionId: string, client: ClientAddress, agent: string): Exchange => ({
    transactionId,
    startedAt: Date.now(),
    method,
    target: routed.target,
    match: catalog.match(method, routed.target.segments),
    region: routed.region,
    identity: UNKNOWN_INITIATOR,
    pendingIdentity: undefined,
    clientAddress: client.address,
    clientAddressType: client.addressType,
    agent,
    requestBody: undefined,
    requestContentType: undefined,
    status: undefined,
    responseBody: undefined,
    responseContentType: undefined,
    error: undefined,
    incomplete: false,
    streaming: false,
  });

  const intake = (req: IncomingMessage, routed: Routed): Intake => {
    const method = req.method ?? 'GET';
    const x = exchange(method, routed, transactionIdFor(req.headers), clientAddressOf(req, trustedProxies), agentOf(req));
    const resolved = identities.resolve(req.headers.authorization);
    x.identity = resolved.identity;
    x.pendingIdentity = resolved.pending;
    x.requestContentType = req.headers['content-type'];
    x.streaming = method === 'GET' && routed.target.search !== '' && STREAMING_QUERY.test(routed.target.search);
    let refused = routed.refused ?? refusalOf(req, routed.target, limits);
    if (!refused && connections > limits.maxConnections) {
      refused = new GatewayError(
        'ERR_TOO_MANY_CONNECTIONS',
        `The gateway serves at most ${limits.maxConnections} connections (MAX_CONNECTIONS); retry shortly.`,
      );
    }
    return { x, refused };
  };

  const prepare = (req: IncomingMessage, res: ClientResponse): { call: ProxyCall; refused: GatewayError | undefined } => {
    const routed = route(req.url ?? '/');
    const { x, refused } = intake(req, routed);
    const call = new ProxyCall(ctx, req, res, x, upstreams.get(routed.region, x.match.upstream));
    track(req, res, call);
    return { call, refused };
  };

  const refuse = (call: ProxyCall, req: IncomingMessage, refused: GatewayError, res?: ServerResponse): void => {
    ctx.metrics.callsRefused.inc({ reason: refused.code.slice(4).toLowerCase() });
    // Nothing of this request is read: the connection is closed after the answer.
    if (res) res.shouldKeepAlive = false;
    req.resume();
    call.fail(refused);
  };

  return {
    onRequest: (req, res) => {
      const { call, refused } = prepare(req, res);
      if (refused) refuse(call, req, refused, res);
      else call.start();
    },
    onUpgrade: (req, socket, head) => {
      const { call, refused } = prepare(req, new SocketResponse(socket));
      if (refused) refuse(call, req, refused);
      else call.start({ protocol: req.headers.upgrade ?? 'websocket', head });
    },
    onConnect: (req, socket) => {
      const { call } = prepare(req, new SocketResponse(socket));
      refuse(
        call,
        req,
        new GatewayError(
          'ERR_METHOD_NOT_ALLOWED',
          'CONNECT is not accepted: this gateway only forwards Code Engine API calls to its configured upstreams.',
        ),
      );
    },
    onClientError: (err, socket) => {
      const code = (err as NodeJS.ErrnoException).code;
      // The client went away mid-request (reset, or its end of the connection closed before the request was
      // whole): not a malformed request. A call under way records its own outcome (unknown) when it sees it.
      if (code === 'ECONNRESET' || code === 'HPE_INVALID_EOF_STATE' || !socket.writable) {
        socket.destroy();
        return;
      }
      const refused = clientErrorRefusal(code, limits);
      const inFlight = active.get(socket);
      if (inFlight && !inFlight.requestComplete) {
        // The head was valid and the call under way: its body turned out malformed. That call's one event says so.
        active.delete(socket);
        ctx.metrics.callsRefused.inc({ reason: refused.code.slice(4).toLowerCase() });
        inFlight.abortMalformed(refused, socket);
        return;
      }
      const line = requestLineOf((err as { rawPacket?: Buffer }).rawPacket);
      const transactionId = transactionIdFor({});
      // A malformed request pipelined behind a call still being answered: answer it after that call, in order.
      const reply = (): void => (inFlight ? inFlight.whenFinished(send) : send());
      const send = (): void => writeRawErrorReply(socket, refused, transactionId);
      // An idle keep-alive connection timing out is not a request: nothing to audit.
      if (!line) {
        ctx.metrics.callsRefused.inc({ reason: refused.code.slice(4).toLowerCase() });
        reply();
        return;
      }
      const url = scope ? scope.localUrl(line.url) : line.url;
      const routed = url === undefined ? undefined : route(url);
      // A request outside this front end's scope (another route of the app) is answered, not audited.
      if (!routed) {
        reply();
        return;
      }
      const x = exchange(line.method, routed, transactionId, peerAddressOf(socket as Socket), '');
      x.error = refused;
      x.status = httpErrorFor(refused, '').status;
      ctx.metrics.callsRefused.inc({ reason: refused.code.slice(4).toLowerCase() });
      void ctx.recordEvent(x).finally(reply);
    },
    onConnection: (socket) => {
      connections++;
      socket.once('close', () => connections--);
    },
    route,
    intake,
    track,
  };
}
