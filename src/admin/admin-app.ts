import express, { type Express } from 'express';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';

export interface ReadinessCheck {
  name: string;
  /** Undefined when ready, else why not. */
  problem(): string | undefined;
}

/**
 * The admin listener (never the proxy port): liveness and readiness for the orchestrator. Readiness fails
 * while events cannot be recorded, so a load balancer stops sending calls that would be refused.
 */
export function createAdminApp(logger: Logger, checks: ReadinessCheck[]): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(pinoHttp({ logger, autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' } }));
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const problems = checks.flatMap((c) => {
      const problem = c.problem();
      return problem ? [{ check: c.name, problem }] : [];
    });
    res.status(problems.length ? 503 : 200).json({ status: problems.length ? 'unready' : 'ready', problems });
  });
  app.use((_req, res) => {
    res.status(404).json({ error: 'not found', routes: ['/healthz', '/readyz'] });
  });
  return app;
}
