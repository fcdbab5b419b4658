/** A small load generator for end-to-end tests: many calls, bounded concurrency, keep-alive, 127.0.0.1 only. */
import { Pool } from 'undici';

export interface CallSpec {
  method?: string;
  path: string;
  body?: string;
  transactionId: string;
}

export interface CallResult {
  transactionId: string;
  status: number;
  /** The whole response arrived: the gateway had recorded its event. */
  complete: boolean;
  error?: string;
}

export async function fireCalls(
  baseUrl: string,
  calls: readonly CallSpec[],
  options: { concurrency?: number; stopWhen?: () => boolean } = {},
): Promise<CallResult[]> {
  const pool = new Pool(baseUrl, { connections: options.concurrency ?? 16, keepAliveTimeout: 5000 });
  const results: CallResult[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < calls.length && !options.stopWhen?.()) {
      const call = calls[next++] as CallSpec;
      try {
        const res = await pool.request({
          method: call.method ?? 'GET',
          path: call.path,
          body: call.body,
          headers: { 'x-transaction-id': call.transactionId, 'content-type': 'application/json' },
        });
        await res.body.arrayBuffer();
        results.push({ transactionId: call.transactionId, status: res.statusCode, complete: true });
      } catch (err) {
        results.push({ transactionId: call.transactionId, status: 0, complete: false, error: (err as Error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 16 }, worker));
  await pool.destroy();
  return results;
}

export async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return condition();
}
