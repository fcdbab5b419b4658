import { rootCertificates } from 'node:tls';
import { Pool } from 'undici';
import type { GatewayConfig, UpstreamTarget } from '../config';
import type { Region, UpstreamName } from '../types';

export interface Upstream extends UpstreamTarget {
  name: UpstreamName;
  region: Region;
  pool: Pool;
}

/**
 * One keep-alive connection pool per configured region and upstream: the only places the gateway ever
 * connects to. A region that is not configured has no pool, so no request can reach it.
 */
export class Upstreams {
  private readonly byRegion = new Map<Region, Record<UpstreamName, Upstream>>();

  constructor(config: GatewayConfig) {
    // Upstream TLS is always verified: against the system CAs, plus UPSTREAM_CA_FILE when given.
    const ca = config.upstreamCa ? [...rootCertificates, config.upstreamCa.toString('latin1')] : undefined;
    const make = (region: Region, name: UpstreamName, target: UpstreamTarget): Upstream => ({
      ...target,
      name,
      region,
      pool: new Pool(target.origin, {
        connections: config.upstream.connections,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 600_000,
        headersTimeout: config.upstream.headersTimeoutMs,
        bodyTimeout: config.upstream.bodyTimeoutMs,
        connect: { timeout: config.upstream.connectTimeoutMs, rejectUnauthorized: true, ...(ca ? { ca } : {}) },
      }),
    });
    for (const [region, rc] of config.regions) {
      this.byRegion.set(region, { api: make(region, 'api', rc.upstreams.api), kube: make(region, 'kube', rc.upstreams.kube) });
    }
  }

  get(region: Region, name: UpstreamName): Upstream {
    const upstreams = this.byRegion.get(region);
    if (!upstreams) throw new Error(`no upstreams for region ${region}`);
    return upstreams[name];
  }

  private all(): Upstream[] {
    return [...this.byRegion.values()].flatMap((u) => [u.api, u.kube]);
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((u) => u.pool.close()));
  }

  async destroy(): Promise<void> {
    await Promise.all(this.all().map((u) => u.pool.destroy()));
  }
}
