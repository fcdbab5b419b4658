import express, { type Express } from 'express';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import { createHash, timingSafeEqual } from 'node:crypto';

/** Constant-time comparison (of digests, so lengths do not leak either). */
function bearerMatches(header: string | undefined, token: string): boolean {
  const given = /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1] ?? '';
  const digest = (v: string): Buffer => createHash('sha256').update(v).digest();
  return timingSafeEqual(digest(given), digest(token));
}

export interface ReadinessCheck {
  name: string;
  /** Why the gateway is not ready; empty when it is. */
  problems(): string[] | Promise<string[]>;
}

/**
 * The admin listener (never the proxy port): liveness, readiness and metrics. Readiness fails while events
 * cannot be recorded or delivered, so an orchestrator stops sending calls that would be refused.
 */
export function createAdminApp(
  logger: Logger,
  metricsText: () => Promise<string>,
  contentType: string,
  token: string | undefined,
  checks: ReadinessCheck[],
): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(
    pinoHttp({ logger, autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics' } }),
  );
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const found = await Promise.all(checks.map(async (c) => (await c.problems()).map((problem) => ({ check: c.name, problem }))));
    const problems = found.flat();
    res.status(problems.length ? 503 : 200).json({ status: problems.length ? 'unready' : 'ready', problems });
  });
  app.get('/metrics', async (req, res) => {
    if (token !== undefined && !bearerMatches(req.headers.authorization, token)) {
      res
        .status(401)
        .set('www-authenticate', 'Bearer realm="ce-audit-gateway admin"')
        .json({ error: 'metrics need Authorization: Bearer <ADMIN_TOKEN>' });
      return;
    }
    res.type(contentType).send(await metricsText());
  });
  app.use((_req, res) => {
    res.status(404).json({ error: 'not found', routes: ['/healthz', '/readyz', '/metrics'] });
  });
  return app;
}
