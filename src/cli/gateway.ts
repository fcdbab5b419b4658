#!/usr/bin/env node
/**
 * The ce-audit-gateway command (package.json "bin"; `npm start` and the image run it): the standalone gateway,
 * configured by the environment, stopped by SIGTERM or SIGINT. The library entry is src/index.ts.
 */
import { loadConfig } from '../config';
import { GatewayError } from '../errors';
import { Gateway } from '../gateway';
import { applyHeapGrowing } from '../runtime/heap';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof GatewayError) {
      process.stderr.write(`ce-audit-gateway: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  // Process-wide (a V8 flag): the command's to set, never the library's.
  applyHeapGrowing(config.heapGrowingPercent);
  const gateway = await Gateway.start(config);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    gateway.logger.info({ signal }, 'shutting down: no new calls; finishing calls in flight');
    gateway.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        gateway.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`ce-audit-gateway: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
