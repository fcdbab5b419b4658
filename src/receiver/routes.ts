/** Maps a request path to the receiver API it addresses and, for the ingest APIs, the region. */
import type { ReceiverApi } from './types';

export interface Route {
  api: ReceiverApi;
  region: string | undefined;
}

const REGION = /^[a-z0-9][a-z0-9-]{0,62}$/;
const INGEST_PATHS: ReadonlyArray<{ api: 'logdna' | 'cloud-logs'; pattern: RegExp }> = [
  { api: 'logdna', pattern: /^\/logdna\/([^/]+)\/logs\/ingest\/?$/ },
  { api: 'cloud-logs', pattern: /^\/cloud-logs\/([^/]+)\/logs\/v1\/singles\/?$/ },
];

export function routeOf(pathname: string): Route {
  if (pathname === '/identity/token') return { api: 'iam', region: undefined };
  if (pathname === '/_events') return { api: 'events', region: undefined };
  for (const { api, pattern } of INGEST_PATHS) {
    const segment = pattern.exec(pathname)?.[1];
    if (segment === undefined) continue;
    let region: string;
    try {
      region = decodeURIComponent(segment);
    } catch {
      break;
    }
    if (REGION.test(region)) return { api, region };
    break;
  }
  return { api: 'unknown', region: undefined };
}

/** The base URL for clients: an unspecified listen address is reached through loopback. */
export function baseUrl(host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}
