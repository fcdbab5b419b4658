import type { ServerOptions } from 'node:http';
import type { ClientLimits } from '../config';

/**
 * The options of an HTTP server that enforce the client limits Node checks itself: the head size, the head and
 * whole-request timeouts (checked every second at most instead of Node's 30 s), and idle keep-alive. The standalone
 * listener is created with them; an app that embeds the audit middleware passes them to its own createServer.
 */
export function clientLimitOptions(
  limits: ClientLimits,
): Required<
  Pick<ServerOptions, 'keepAliveTimeout' | 'headersTimeout' | 'requestTimeout' | 'maxHeaderSize' | 'connectionsCheckingInterval'>
> {
  return {
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
    connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(limits.headersTimeoutMs / 2))),
  };
}
