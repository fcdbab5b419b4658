/**
 * ce-audit-gateway as a library: `require('ce-audit-gateway')` or `import ... from 'ce-audit-gateway'`. Importing it
 * starts nothing: no listener, no timer, no signal handler (the command line is cli/gateway.ts, the package's "bin").
 *
 * - loadConfig(settings): the start-up validation, from any record of the documented settings.
 * - startGateway(config): the standalone gateway (proxy and admin listeners, spool, delivery), with stop().
 * - createAuditMiddleware(config): the gateway's audit as Express middleware, with close() and attach(server).
 * - createCodeEngineProxy(config): the gateway's own proxy as an Express handler, with close().
 */
import type { GatewayConfig } from './config';
import { configFrom, loadGatewayConfig, type GatewaySettings } from './config/input';
import { Gateway, type GatewayOptions } from './gateway';

export { loadGatewayConfig as loadConfig };
export { createAuditMiddleware } from './middleware/audit-middleware';
export { createCodeEngineProxy } from './middleware/code-engine-proxy';
export { upstreamUrlOf } from './middleware/audited-call';
export { GatewayError, httpErrorFor } from './errors';

/**
 * The standalone gateway, as `ce-audit-gateway` runs it: the proxy listener on PORT, the admin listener on
 * ADMIN_PORT, the spool and delivery. Resolves once both listen; stop() drains and closes everything.
 */
export function startGateway(config: GatewayConfig | GatewaySettings, options: GatewayOptions = {}): Promise<Gateway> {
  return Gateway.start(configFrom(config), options);
}

export type { Gateway, GatewayOptions, ListeningAddress } from './gateway';
export type { GatewayConfig, RegionConfig, ClientLimits, SinkName, SpoolFullPolicy, UpstreamTarget } from './config';
export type { GatewaySettings, SettingName } from './config/input';
export type { AuditMiddleware, AuditMiddlewareOptions, AttachOptions } from './middleware/audit-middleware';
export type { CodeEngineProxy, NextFunction, RequestHandlerLike } from './middleware/code-engine-proxy';
export type { ErrorCode, HttpError } from './errors';
export type { ActionEdition, AuditEvent, AuditReason, Initiator, Outcome, Region, ResponseDataPolicy, Severity } from './types';
