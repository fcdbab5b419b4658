#!/usr/bin/env node
/**
 * The ce-audit-gateway command (package.json "bin"; `npm start` and the image run it): the standalone gateway,
 * configured by the environment, stopped by SIGTERM or SIGINT. The library entry is src/index.ts.
 *
 * Exit codes: 0 after a clean stop; 1 when some audit events could only be written to the log at shutdown, when
 * stopping did not finish in time, or on an unexpected failure; 2 for a configuration the gateway cannot run with (a
 * bad setting, a directory it cannot write), with the reason on stderr.
 */
import { loadConfig, type GatewayConfig } from '../config';
import { GatewayError } from '../errors';
import { Gateway } from '../gateway';
import { applyHeapGrowing } from '../runtime/heap';

/** SIGTERM exits within DRAIN_TIMEOUT_MS + this, whatever the disk does (the gateway itself stops 1 s before). */
const EXIT_GRACE_MS = 1500;

/** A configuration the gateway cannot run with (a bad setting, a directory it cannot write): exit 2, with the reason. */
function isSetupError(err: unknown): err is GatewayError {
  return err instanceof GatewayError && (err.code === 'ERR_CONFIG_INVALID' || err.code === 'ERR_STORAGE_UNUSABLE');
}

async function setUp<T>(step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (isSetupError(err)) {
      process.stderr.write(`ce-audit-gateway: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

async function main(): Promise<void> {
  const config: GatewayConfig = await setUp(() => loadConfig(process.env));
  // Process-wide (a V8 flag): the command's to set, never the library's.
  applyHeapGrowing(config.heapGrowingPercent);
  const gateway = await setUp(() => Gateway.start(config));
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    gateway.logger.info({ signal }, 'shutting down: no new calls; finishing calls in flight');
    // The last word if stopping itself hangs (a disk that never answers): report what is not written, and go. Not
    // unref'd: the process must not end silently, with nothing left to run, before stop() has reported.
    setTimeout(() => {
      gateway.recorder.reportUnwritten(gateway.recorder.unwritten());
      gateway.logger.error(
        { drainTimeoutMs: config.drainTimeoutMs },
        'shutdown did not finish in time (the disk does not answer); exiting',
      );
      process.exit(1);
    }, config.drainTimeoutMs + EXIT_GRACE_MS);
    gateway.stop().then(
      // Events only in the log (the spool could not take them) make the exit an error: an operator must look.
      (unwritten) => process.exit(unwritten.count > 0 ? 1 : 0),
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
