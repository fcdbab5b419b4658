/**
 * A receiver that behaves like IBM Cloud Activity Tracker's ingestion side, for tests, benchmarks and the demo:
 * one node:http server speaking the LogDNA (Mezmo) ingest API and the IBM Cloud Logs ingest API for any
 * region (the region is in the path), plus the IAM token endpoint whose tokens Cloud Logs accepts.
 *
 *   LogDNA      POST {url}/logdna/{region}/logs/ingest?hostname=...&now=...
 *   Cloud Logs  POST {url}/cloud-logs/{region}/logs/v1/singles
 *   IAM         POST {url}/identity/token
 *   events      GET  {url}/_events?region=...   (what was accepted, for the demo)
 *
 * `behave` injects failures per region. Keys and tokens are never stored: request headers are redacted and the
 * token store keeps digests only.
 */
import * as http from 'node:http';
import type { Socket } from 'node:net';
import { BehaviourTable } from './behaviours';
import { dispatch, type ReceiverState } from './dispatch';
import { TokenStore } from './iam';
import { resolveOptions } from './options';
import { baseUrl } from './routes';
import type { Receiver, ReceiverOptions } from './types';

export type {
  Behaviour,
  FailureStatus,
  IngestApi,
  LineLimitMode,
  ReceivedEvent,
  ReceivedRequest,
  Receiver,
  ReceiverApi,
  ReceiverOptions,
  Region,
} from './types';
export { ReceiverError, type ReceiverErrorCode } from './errors';

function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      if (address === null || typeof address === 'string') reject(new Error('receiver: unexpected listen address'));
      else resolve(address.port);
    });
  });
}

export async function startReceiver(options: ReceiverOptions = {}): Promise<Receiver> {
  const resolved = resolveOptions(options);
  const state: ReceiverState = {
    options: resolved,
    events: [],
    requests: [],
    behaviours: new BehaviourTable(),
    tokens: new TokenStore(resolved.tokenTtlSeconds),
    hanging: new Set(),
  };
  const server = http.createServer((req, res) => {
    dispatch(state, req, res).catch(() => res.destroy());
  });
  server.requestTimeout = 0;
  server.on('connection', (socket: Socket) => {
    if (state.behaviours.allDown) socket.destroy();
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  const port = await listen(server, resolved.port, resolved.host);
  const url = baseUrl(resolved.host, port);
  let closing: Promise<void> | undefined;

  return {
    url,
    port,
    logdnaUrlTemplate: `${url}/logdna/{region}/logs/ingest`,
    cloudLogsUrlTemplate: `${url}/cloud-logs/{region}/logs/v1/singles`,
    iamTokenUrl: `${url}/identity/token`,
    events: (region?: string) => (region === undefined ? [...state.events] : state.events.filter((e) => e.region === region)),
    get requests() {
      return state.requests;
    },
    get tokensIssued() {
      return state.tokens.issued;
    },
    behave: (region, b) => state.behaviours.set(region, b),
    reset(): void {
      state.events.splice(0);
      state.requests.splice(0);
      state.behaviours.clear();
      state.tokens.issued = 0;
    },
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        for (const res of state.hanging) res.destroy();
        state.hanging.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
