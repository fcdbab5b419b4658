import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config';
import type { DeliveryMetrics } from '../metrics';
import type { Region } from '../types';
import { DeadLetters, secretScrubber } from './dead-letter';
import { Delivery } from './delivery';
import type { PaceSource } from './pacer';
import { createSinkFactory } from './sinks';
import type { SpoolReader } from './worker';

export interface Assembled {
  delivery: Delivery;
  /** Closes what the sinks share, after delivery stopped. */
  closeShared: () => Promise<void>;
}

/** Delivery with its sinks and dead-letter files: the same parts, in whichever thread runs them. */
export function assembleDelivery(
  config: GatewayConfig,
  spools: ReadonlyMap<Region, SpoolReader>,
  metrics: DeliveryMetrics,
  logger: Logger,
  stdout?: Writable,
  pacer?: PaceSource,
): Assembled {
  const scrub = secretScrubber(config.secrets);
  const fileError = (err: Error, attempt: number): void => {
    const e = { message: err.message, code: (err as NodeJS.ErrnoException).code };
    // Attempt 0: not a failed write but something found and dealt with (a torn last line cut, a removed file written back).
    if (attempt === 0) logger.warn({ err: e }, 'journal or dead-letter file repaired');
    else logger.error({ err: e, attempt }, 'file write failed; retrying');
  };
  const sinks = createSinkFactory(config, { scrub, onFileError: fileError, stdout });
  const delivery = new Delivery({
    config,
    spools,
    createSink: sinks.create,
    deadLetters: new DeadLetters(path.join(config.spool.dir, 'dead-letter'), scrub, fileError),
    metrics,
    logger,
    scrub,
    pacer,
  });
  return { delivery, closeShared: sinks.close };
}
