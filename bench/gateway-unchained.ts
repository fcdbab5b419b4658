/**
 * The gateway without its audit chain and checkpoints, for one measurement only: what hashing, the chain and the
 * checkpoints cost (the "integrity" pair of `npm run bench`). Everything else is the gateway as `dist/index.js`
 * runs it (dist/cli/gateway.js); there is no setting for this in the product.
 */
import { loadConfig } from '../src/config';
import { Gateway } from '../src/gateway';
import { applyHeapGrowing } from '../src/runtime/heap';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  applyHeapGrowing(config.heapGrowingPercent);
  const gateway = await Gateway.start(config, { integrity: false });
  const stop = (): void => {
    gateway.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`gateway-unchained: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
