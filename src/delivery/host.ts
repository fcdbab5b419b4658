import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import pino, { type Logger } from 'pino';
import type { GatewayConfig } from '../config';
import { DeliveryMetrics } from '../metrics';
import type { SpoolRecorder } from '../record/spool-recorder';
import { assembleDelivery, type Assembled } from './assemble';
import { DeliveryPacer } from './pacer';
import type { DeliveryThreadData, ToDelivery, ToProxy } from './protocol';
import { SpoolService } from './spool-service';

/** Delivery as the gateway drives it, wherever it runs. */
export interface DeliveryHost {
  /** Deliver what can be delivered before the deadline; true when every sink caught up. */
  flush(deadline: number): Promise<boolean>;
  stop(): Promise<void>;
  /** Readiness problems (sinks failing for too long). */
  problems(): Promise<string[]>;
  /** Prometheus text of the delivery metrics. */
  metricsText(): Promise<string>;
}

/** Delivery on the proxy's own thread (DELIVERY_THREAD=main). */
export class InThreadDelivery implements DeliveryHost {
  private readonly metrics = new DeliveryMetrics();
  private readonly parts: Assembled;
  private readonly pacer: DeliveryPacer | undefined;

  constructor(config: GatewayConfig, recorder: SpoolRecorder, logger: Logger, stdout?: Writable) {
    const spools = new Map(recorder.regions);
    if (config.deliveryPacing === 'calls-first') {
      const all = [...spools.values()];
      this.pacer = new DeliveryPacer({ recorded: () => all.reduce((n, s) => n + s.committedRecords, 0) });
      this.pacer.start();
    }
    this.parts = assembleDelivery(config, spools, this.metrics, logger, stdout, this.pacer);
    this.parts.delivery.start();
  }

  flush(deadline: number): Promise<boolean> {
    return this.parts.delivery.flush(deadline);
  }

  async stop(): Promise<void> {
    this.pacer?.stop();
    await this.parts.delivery.stop();
    await this.parts.closeShared();
  }

  async problems(): Promise<string[]> {
    return this.parts.delivery.problems();
  }

  metricsText(): Promise<string> {
    return this.metrics.registry.metrics();
  }
}

/** The compiled thread entry: beside this file when running from dist/, in dist/ when running from sources. */
function threadFile(): string {
  const candidates = [path.join(__dirname, 'thread.js'), path.resolve(__dirname, '..', '..', 'dist', 'delivery', 'thread.js')];
  const found = candidates.find((f) => existsSync(f));
  if (!found) throw new Error(`the delivery thread (dist/delivery/thread.js) is missing: run "npm run build"`);
  return found;
}

const RESTART_DELAY_MS = 1000;

/**
 * Delivery on its own thread (DELIVERY_THREAD=worker): batching, serialising and sending events
 * never hold up a call, and a second core does that work. The proxy thread keeps the spool; the delivery
 * thread reads it through messages. If the thread dies it is started again: the spool kept everything.
 */
export class ThreadDelivery implements DeliveryHost {
  private worker: Worker | undefined;
  private readonly service: SpoolService;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private stopping = false;
  private ready: Promise<void> = Promise.resolve();
  private readonly logStream: { write(line: string): unknown };

  constructor(
    private readonly config: GatewayConfig,
    recorder: SpoolRecorder,
    private readonly logger: Logger,
  ) {
    this.service = new SpoolService(recorder);
    // The thread's log lines are already redacted JSON: written to the gateway's log stream as they are.
    const stream = (logger as unknown as Record<symbol, { write(line: string): unknown } | undefined>)[pino.symbols.streamSym];
    this.logStream = stream ?? { write: (line: string) => process.stdout.write(line) };
    this.spawn();
  }

  private spawn(): void {
    const data: DeliveryThreadData = { env: { ...this.config.sourceEnv }, regions: this.service.states() };
    const worker = new Worker(threadFile(), { workerData: data });
    this.worker = worker;
    this.service.attach(worker);
    this.ready = new Promise((resolve) => {
      const onReady = (m: ToProxy): void => {
        if (m.t !== 'ready') return;
        worker.off('message', onReady);
        resolve();
      };
      worker.on('message', onReady);
    });
    worker.on('message', (m: ToProxy) => void this.onMessage(m, worker));
    worker.on('error', (err) => this.logger.fatal({ err: { message: err.message, stack: err.stack } }, 'delivery thread failed'));
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = undefined;
      for (const p of this.pending.values()) p.reject(new Error(`delivery thread exited (${code})`));
      this.pending.clear();
      if (this.stopping) return;
      this.logger.error({ code }, 'delivery thread exited; starting it again (undelivered events are kept in the spool)');
      setTimeout(() => {
        if (!this.stopping) this.spawn();
      }, RESTART_DELAY_MS).unref();
    });
  }

  private async onMessage(m: ToProxy, worker: Worker): Promise<void> {
    if (m.t === 'log') {
      this.logStream.write(m.line);
      return;
    }
    if (m.t === 'reply') {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.ok) p?.resolve(m.value);
      else p?.reject(new Error(m.error));
      return;
    }
    await this.service.handle(m, worker);
  }

  private async call<T>(message: Extract<ToDelivery, { id: number }>): Promise<T> {
    await this.ready;
    const worker = this.worker;
    if (!worker) throw new Error('delivery thread is not running');
    return new Promise<T>((resolve, reject) => {
      this.pending.set(message.id, { resolve: (v) => resolve(v as T), reject });
      worker.postMessage(message);
    });
  }

  async flush(deadline: number): Promise<boolean> {
    try {
      return await this.call<boolean>({ t: 'flush', id: this.nextId++, deadline });
    } catch {
      return false;
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    try {
      await this.call<void>({ t: 'stop', id: this.nextId++ });
    } catch {
      // Already gone.
    }
    await this.worker?.terminate();
    this.service.close();
  }

  async problems(): Promise<string[]> {
    try {
      return await this.call<string[]>({ t: 'problems', id: this.nextId++ });
    } catch (err) {
      return [`delivery thread: ${(err as Error).message}`];
    }
  }

  async metricsText(): Promise<string> {
    try {
      return await this.call<string>({ t: 'metrics', id: this.nextId++ });
    } catch {
      return '';
    }
  }
}
