import { Pool } from 'undici';
import type { GatewayConfig, UpstreamTarget } from '../config';
import type { UpstreamName } from '../types';

export interface Upstream extends UpstreamTarget {
  name: UpstreamName;
  pool: Pool;
}

/** One keep-alive connection pool per configured upstream; the only places the gateway ever connects to. */
export class Upstreams {
  private readonly byName: Record<UpstreamName, Upstream>;

  constructor(config: GatewayConfig) {
    const make = (name: UpstreamName, target: UpstreamTarget): Upstream => ({
      ...target,
      name,
      pool: new Pool(target.origin, {
        connections: config.upstream.connections,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 600_000,
        headersTimeout: config.upstream.headersTimeoutMs,
        bodyTimeout: config.upstream.bodyTimeoutMs,
        connect: { timeout: config.upstream.connectTimeoutMs, rejectUnauthorized: true },
      }),
    });
    this.byName = { api: make('api', config.upstreams.api), kube: make('kube', config.upstreams.kube) };
  }

  get(name: UpstreamName): Upstream {
    return this.byName[name];
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.byName).map((u) => u.pool.close()));
  }

  destroy(): Promise<void> {
    return Promise.all(Object.values(this.byName).map((u) => u.pool.destroy())).then(() => undefined);
  }
}
