import express, { type Express } from 'express';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { Registry } from 'prom-client';

export interface ReadinessCheck {
  name: string;
  /** Why the gateway is not ready; empty when it is. */
  problems(): string[];
}

/**
 * The admin listener (never the proxy port): liveness, readiness and metrics. Readiness fails while events
 * cannot be recorded or delivered, so an orchestrator stops sending calls that would be refused.
 */
export function createAdminApp(logger: Logger, registry: Registry, checks: ReadinessCheck[]): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(
    pinoHttp({ logger, autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics' } }),
  );
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const problems = checks.flatMap((c) => c.problems().map((problem) => ({ check: c.name, problem })));
    res.status(problems.length ? 503 : 200).json({ status: problems.length ? 'unready' : 'ready', problems });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  app.use((_req, res) => {
    res.status(404).json({ error: 'not found', routes: ['/healthz', '/readyz', '/metrics'] });
  });
  return app;
}
