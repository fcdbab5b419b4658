/**
 * An Express service that fronts Code Engine for its users and audits every call it forwards: its own routes,
 * the audit middleware, and the gateway's proxy. Configured like the gateway (CE_REGION, SPOOL_DIR, AT_SINK, ...);
 * APP_PORT is this service's port. Run: npm run build && npx tsc -p examples/tsconfig.json &&
 * node build/examples/express-app/app.js, then e.g. curl http://127.0.0.1:3000/codeengine/v2/projects.
 */
import { createServer } from 'node:http';
import express from 'express';
import { createAuditMiddleware, createCodeEngineProxy, loadConfig } from 'ce-audit-gateway';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const audit = await createAuditMiddleware(config);
  const proxy = createCodeEngineProxy(config);

  const app = express();
  // The service's own routes: never audited, never forwarded.
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const problems = await audit.problems();
    res.status(problems.length > 0 ? 503 : 200).json({ problems });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(audit.metricsContentType).send(await audit.metrics());
  });
  // Code Engine calls: audited (one event each, durable before the answer completes), then forwarded.
  app.use('/codeengine', audit, proxy);

  // The audit's limits need the server: created with its options, attached for upgrades and parser refusals.
  const server = createServer(audit.serverOptions, app);
  audit.attach(server, { path: '/codeengine', proxy });
  server.listen(Number(process.env.APP_PORT ?? 3000), '127.0.0.1', () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    process.stdout.write(`${JSON.stringify({ msg: 'example app listening', url: `http://127.0.0.1:${port}` })}\n`);
  });

  process.once('SIGTERM', () => {
    // Stop taking calls, let those in flight finish, then deliver what can be delivered and close the spool.
    server.close();
    server.closeIdleConnections();
    void Promise.all([proxy.close(), audit.close()]).then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`example app: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
