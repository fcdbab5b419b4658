import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors';
import type { RequestScope } from '../proxy/proxy-handler';

/** What Express adds to a request: the target as received, and the mount path of the router serving it. */
export interface MountedRequest extends IncomingMessage {
  originalUrl?: string;
  baseUrl?: string;
}

/**
 * The request target below the mount path: Express's `originalUrl` without its `baseUrl` (so a path that an earlier
 * handler rewrote in `req.url` is still audited as sent); `req.url` outside Express.
 */
export function localUrlOf(req: MountedRequest): string {
  const original = req.originalUrl;
  const base = req.baseUrl;
  if (typeof original !== 'string') return req.url ?? '/';
  if (!base) return original;
  // Express matches mount paths without regard to case; baseUrl is the part of the path that matched.
  if (original.length >= base.length && original.slice(0, base.length).toLowerCase() === base.toLowerCase()) {
    const rest = original.slice(base.length);
    return rest === '' || rest[0] === '?' ? `/${rest}` : rest;
  }
  return req.url ?? '/';
}

/** A mount path: '/' or '/a/b', no trailing slash, no query; thrown as a typed error otherwise. */
export function checkMountPath(path: string): string {
  if (typeof path !== 'string' || !/^\/([A-Za-z0-9._~!$&'()*+,=:@-]+(\/[A-Za-z0-9._~!$&'()*+,=:@-]+)*)?$/.test(path)) {
    throw new GatewayError(
      'ERR_CONFIG_INVALID',
      `Invalid attach option: path=${JSON.stringify(path)} is not valid: expected the mount path of the audit middleware, '/' or a path such as '/ce' (no trailing slash, no query).`,
    );
  }
  return path;
}

/**
 * The requests below a mount path, for what the middleware sees at the server (attach): parser refusals and upgrades
 * under the mount are audited like calls through the middleware; the others belong to other routes of the app.
 */
export function mountScope(mountPath: string): RequestScope {
  const mount = mountPath === '/' ? '' : mountPath;
  return {
    localUrl: (url) => {
      if (mount === '') return url;
      // Like Express: the mount path matches without regard to case, up to a '/' (or the end of the path).
      if (url.length < mount.length || url.slice(0, mount.length).toLowerCase() !== mount.toLowerCase()) return undefined;
      const rest = url.slice(mount.length);
      if (rest === '' || rest[0] === '?') return `/${rest}`;
      return rest[0] === '/' ? rest : undefined;
    },
  };
}
