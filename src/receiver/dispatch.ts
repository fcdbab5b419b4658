/**
 * One request through the receiver: record it, apply the region's behaviour, run the API handler and write
 * its reply (or the error in that API's own shape). Never answers twice, never throws.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { BehaviourTable } from './behaviours';
import { readRawBody } from './body';
import { handleCloudLogs, cloudLogsErrorBody } from './cloud-logs';
import { ReceiverError } from './errors';
import { jsonReply, redactHeaders, redactedQuery, writeReply, type Reply } from './http';
import { handleIam, type TokenStore } from './iam';
import type { PartialRejection } from './ingest';
import { handleLogdna, logdnaErrorBody } from './logdna';
import type { ResolvedOptions } from './options';
import { routeOf } from './routes';
import type { Behaviour, ReceivedEvent, ReceivedRequest, ReceiverApi } from './types';

export interface ReceiverState {
  options: ResolvedOptions;
  events: ReceivedEvent[];
  requests: ReceivedRequest[];
  behaviours: BehaviourTable;
  tokens: TokenStore;
  /** Responses held open by the `hang` behaviour. */
  hanging: Set<ServerResponse>;
}

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  record: ReceivedRequest;
  state: ReceiverState;
}

function errorBody(api: ReceiverApi, status: number, message: string): unknown {
  if (api === 'logdna') return logdnaErrorBody(status, message);
  if (api === 'cloud-logs') return cloudLogsErrorBody(status, message);
  return { error: message, status };
}

function send(x: Exchange, reply: Reply): void {
  if (x.res.destroyed || x.res.headersSent) return;
  x.record.status = reply.status;
  writeReply(x.res, reply);
}

/** Reads (and drops) the body first, as a server that fails after receiving the request would. */
async function sendAfterBody(x: Exchange, reply: Reply): Promise<void> {
  await readRawBody(x.req, x.state.options.maxBodyBytes, x.record).catch(() => undefined);
  send(x, reply);
}

function hang(x: Exchange): void {
  const { res, state } = x;
  state.hanging.add(res);
  res.once('close', () => state.hanging.delete(res));
  readRawBody(x.req, state.options.maxBodyBytes, x.record).catch(() => undefined);
}

/** Applies a behaviour; returns the partial rejection to use, or 'handled' when the request was dealt with. */
async function applyBehaviour(x: Exchange, b: Behaviour, api: ReceiverApi): Promise<PartialRejection | undefined | 'handled'> {
  switch (b.mode) {
    case 'ok':
      return undefined;
    case 'partial':
      return { rejectEvery: b.rejectEvery, status: b.status ?? 400 };
    case 'down':
      x.req.socket.destroy();
      return 'handled';
    case 'hang':
      hang(x);
      return 'handled';
    case 'status': {
      const message = `${STATUS_CODES[b.status] ?? 'Error'} (receiver behaviour)`;
      await sendAfterBody(x, jsonReply(b.status, errorBody(api, b.status, message)));
      return 'handled';
    }
    case 'throttle': {
      const headers = { 'Retry-After': String(Math.ceil(b.retryAfterSeconds)) };
      await sendAfterBody(x, jsonReply(429, errorBody(api, 429, 'Too Many Requests (receiver behaviour)'), headers));
      return 'handled';
    }
  }
}

function eventsReply(x: Exchange): Reply {
  if (x.req.method !== 'GET') throw new ReceiverError('ERR_METHOD_NOT_ALLOWED', 'Use GET for /_events.');
  const region = x.url.searchParams.get('region');
  return jsonReply(200, region ? x.state.events.filter((e) => e.region === region) : x.state.events);
}

async function route(x: Exchange, api: ReceiverApi, region: string | undefined): Promise<void> {
  const { req, state } = x;
  if (api === 'iam') return send(x, await handleIam(req, { apiKeys: state.options.iamApiKeys, tokens: state.tokens }, x.record));
  if (api === 'events') return send(x, eventsReply(x));
  if (region === undefined || (api !== 'logdna' && api !== 'cloud-logs')) {
    throw new ReceiverError('ERR_NOT_FOUND', `No receiver API at ${x.url.pathname}.`);
  }
  const partial = await applyBehaviour(x, state.behaviours.take(region), api);
  if (partial === 'handled') return;
  const ingest = { region, limits: state.options, events: state.events, partial, progress: x.record };
  if (api === 'logdna') {
    send(x, await handleLogdna(req, x.url, { ...ingest, key: state.options.logdnaKeys[region] }));
  } else {
    send(x, await handleCloudLogs(req, { ...ingest, tokens: state.tokens }));
  }
}

export async function dispatch(state: ReceiverState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://receiver.invalid');
  const { api, region } = routeOf(url.pathname);
  const record: ReceivedRequest = {
    method: req.method ?? 'GET',
    path: url.pathname,
    query: redactedQuery(url.searchParams),
    region,
    api,
    status: 0,
    headers: redactHeaders(req.headers),
    bodyBytes: 0,
    at: Date.now(),
  };
  state.requests.push(record);
  const x: Exchange = { req, res, url, record, state };
  if (state.behaviours.allDown) {
    req.socket.destroy();
    return;
  }
  try {
    await route(x, api, region);
  } catch (err) {
    if (err instanceof ReceiverError) {
      const headers = err.status === 405 ? { Allow: api === 'events' ? 'GET' : 'POST' } : {};
      send(x, jsonReply(err.status, errorBody(api, err.status, err.message), headers));
    } else if (!req.complete && req.destroyed) {
      return;
    } else {
      send(x, jsonReply(500, errorBody(api, 500, `Receiver error: ${err instanceof Error ? err.message : String(err)}`)));
    }
  }
}
