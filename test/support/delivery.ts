import { startReceiver, type Receiver } from '../../src/receiver/receiver';
import type { ReceiverOptions } from '../../src/receiver/types';
import { startHarness, type Harness } from './harness';

/**
 * A receiver that behaves like Activity Tracker and an in-process gateway delivering to it, started before the
 * tests of the enclosing block (or file) and closed after them. `env` turns the receiver into gateway settings.
 */
export function useReceiverAndGateway(
  receiverOptions: ReceiverOptions,
  env: (receiver: Receiver) => Record<string, string>,
): { receiver: Receiver; h: Harness } {
  const ctx = {} as { receiver: Receiver; h: Harness };
  beforeAll(async () => {
    ctx.receiver = await startReceiver(receiverOptions);
    ctx.h = await startHarness(env(ctx.receiver));
  });
  afterAll(async () => {
    await ctx.h.close();
    await ctx.receiver.close();
  });
  return ctx;
}

/** Gateway settings for LogDNA delivery into `receiver` with one ingestion key, on the delivery thread. */
export function logdnaSinkEnv(receiver: Receiver, key: string): Record<string, string> {
  return { AT_SINK: 'logdna', AT_LOGDNA_URL: receiver.logdnaUrlTemplate, AT_INGESTION_KEY: key, DELIVERY_THREAD: 'worker' };
}
