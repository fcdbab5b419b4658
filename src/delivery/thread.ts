/**
 * Entry of the delivery thread (see ThreadDelivery): it loads the same configuration, builds the sinks, and
 * delivers every region's events from the spool, which it reads through the proxy thread.
 */
import { createWriteStream } from 'node:fs';
import { Writable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { loadConfig } from '../config';
import { createLogger } from '../log';
import { DeliveryMetrics } from '../metrics';
import { assembleDelivery } from './assemble';
import type { DeliveryThreadData, ToDelivery, ToProxy } from './protocol';
import { RemoteSpool } from './remote-spool';
import type { Region } from '../types';

const port = parentPort;
if (!port) throw new Error('the delivery thread must run as a worker thread');
const data = workerData as DeliveryThreadData;
const post = (m: ToProxy): void => port.postMessage(m);

const config = loadConfig(data.env);
const logger = createLogger(
  config.logLevel,
  new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      post({ t: 'log', line: chunk.toString() });
      callback();
    },
  }),
);

let nextId = 1;
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
function rpc<T>(message: { t: 'read' | 'ack'; region: Region } & Record<string, unknown>): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve: (v) => resolve(v as T), reject });
    post({ ...message, id } as unknown as ToProxy);
  });
}

const spools = new Map(data.regions.map((state) => [state.region, new RemoteSpool(state.region, state, rpc)] as const));
const metrics = new DeliveryMetrics();
// The stdout sink writes to the process's standard output directly, not through the main thread's stream.
const parts = assembleDelivery(config, spools, metrics, logger, createWriteStream('', { fd: 1 }));
parts.delivery.start();

const reply = (id: number, work: () => Promise<unknown>): void => {
  work().then(
    (value) => post({ t: 'reply', id, ok: true, value }),
    (err: unknown) => post({ t: 'reply', id, ok: false, error: (err as Error).message }),
  );
};

port.on('message', (m: ToDelivery) => {
  switch (m.t) {
    case 'durable':
      spools.get(m.region)?.durable(m.end);
      return;
    case 'cursor':
      spools.get(m.region)?.moved(m.consumer, m.position);
      return;
    case 'reply': {
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (m.ok) p?.resolve(m.value);
      else p?.reject(new Error(m.error));
      return;
    }
    case 'flush':
      reply(m.id, () => parts.delivery.flush(m.deadline));
      return;
    case 'problems':
      reply(m.id, async () => parts.delivery.problems());
      return;
    case 'metrics':
      reply(m.id, () => metrics.registry.metrics());
      return;
    case 'stop':
      reply(m.id, async () => {
        await parts.delivery.stop();
        await parts.closeShared();
        port.close();
      });
      return;
  }
});
post({ t: 'ready' });
