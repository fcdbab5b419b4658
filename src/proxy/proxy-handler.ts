import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { BlockList } from 'node:net';
import type { Exchange } from '../audit/event-builder';
import { GatewayError } from '../errors';
import { clientAddressOf } from '../http/client-address';
import { parseRequestTarget, type RequestTarget } from '../http/request-target';
import { transactionIdFor } from '../http/transaction-id';
import type { IdentityResolver } from '../identity/initiator';
import type { RouteCatalog } from '../routing/catalog';
import type { Region } from '../types';
import { SocketResponse, type ClientResponse } from './client-response';
import { ProxyCall } from './proxy-call';
import type { ProxyContext } from './proxy-context';
import type { Upstreams } from './upstreams';

export interface ProxyHandlerDeps {
  ctx: ProxyContext;
  catalog: RouteCatalog;
  upstreams: Upstreams;
  identities: IdentityResolver;
  /** Region of calls without a /regions/<region>/ prefix. */
  defaultRegion: Region;
  /** Every configured region. */
  regions: ReadonlySet<Region>;
  trustedProxies: BlockList | undefined;
}

const MAX_AGENT_LENGTH = 256;
const REGION_PREFIX = 'regions';

function unknownRegion(wanted: string, regions: ReadonlySet<Region>): GatewayError {
  const shown = /^[a-z]{2}-[a-z]{2,8}$/.test(wanted) ? `"${wanted}"` : 'in the path';
  return new GatewayError(
    'ERR_BAD_REQUEST',
    `The region ${shown} is not configured on this gateway. Configured regions: ${[...regions].join(', ')} (CE_REGIONS).`,
  );
}
const STREAMING_QUERY = /[?&](watch|follow)=(true|1)(&|$)/;

function agentOf(req: IncomingMessage): string {
  const agent = req.headers['user-agent'];
  if (!agent) return '';
  return agent.length > MAX_AGENT_LENGTH ? agent.slice(0, MAX_AGENT_LENGTH) : agent;
}

export interface ProxyHandlers {
  /** The proxy listener's 'request' handler. */
  onRequest: (req: IncomingMessage, res: ServerResponse) => void;
  /** The proxy listener's 'upgrade' handler (kubectl exec, attach, port-forward; websockets). */
  onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

/** request -> route match -> proxy call (-> event -> record), for plain requests and protocol upgrades alike. */
export function createProxyHandlers(deps: ProxyHandlerDeps): ProxyHandlers {
  const { ctx, catalog, upstreams, identities, defaultRegion, regions, trustedProxies } = deps;
  const prepare = (req: IncomingMessage, res: ClientResponse): { call: ProxyCall; refused: GatewayError | undefined } => {
    const startedAt = Date.now();
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const transactionId = transactionIdFor(req.headers);
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
    const match = catalog.match(method, target.segments);
    const client = clientAddressOf(req, trustedProxies);
    const x: Exchange = {
      transactionId,
      startedAt,
      method,
      target,
      match,
      region,
      identity: identities.resolve(req.headers.authorization),
      clientAddress: client.address,
      clientAddressType: client.addressType,
      agent: agentOf(req),
      requestBody: undefined,
      requestContentType: req.headers['content-type'],
      status: undefined,
      responseBody: undefined,
      responseContentType: undefined,
      error: undefined,
      incomplete: false,
      streaming: method === 'GET' && target.search !== '' && STREAMING_QUERY.test(target.search),
    };
    return { call: new ProxyCall(ctx, req, res, x, upstreams.get(region, match.upstream)), refused };
  };

  return {
    onRequest: (req, res) => {
      const { call, refused } = prepare(req, res);
      if (refused) {
        req.resume();
        call.fail(refused);
        return;
      }
      call.start();
    },
    onUpgrade: (req, socket, head) => {
      const { call, refused } = prepare(req, new SocketResponse(socket));
      if (refused) {
        call.fail(refused);
        return;
      }
      call.start({ protocol: req.headers.upgrade ?? 'websocket', head });
    },
  };
}
