import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { BreakerService } from '../breaker/breaker.service';
import { KvCachePressure } from './kv-cache-pressure';
import { UpstreamLeases } from './upstream-leases.service';
import { UpstreamProbeService } from './upstream-probe.service';
import { UpstreamRegistry } from './upstream-registry';

/** Terminus indicator: at least one upstream answers its probe and is not shut off by its breakers. */
@Injectable()
export class UpstreamHealthIndicator {
  constructor(
    private readonly registry: UpstreamRegistry,
    private readonly probes: UpstreamProbeService,
    private readonly breakers: BreakerService,
    private readonly health: HealthIndicatorService,
    private readonly leases: UpstreamLeases,
    private readonly kvCache: KvCachePressure,
  ) {}

  /**
   * Per-upstream figures: reachable, whether every breaker it has is open, and for upstreams whose
   * attempts are counted, its cap, attempts in flight on every instance and requests waiting here for a permit;
   * and what its own /metrics said (KV-cache use and pressure, prefix-cache hit rate, its queue).
   */
  details() {
    const views = this.breakers.list();
    return this.registry.all().map((u) => {
      const probe = this.probes.get(u.name);
      const own = views.filter((v) => v.upstream === u.name);
      const allOpen = own.length > 0 && own.every((v) => v.state === 'open');
      return {
        name: u.name,
        reachable: probe?.reachable ?? true,
        latency_ms: probe?.latencyMs ?? null,
        checked_at: probe?.checkedAt ? new Date(probe.checkedAt).toISOString() : null,
        breakers_open: own.filter((v) => v.state === 'open').length,
        can_take_traffic: (probe?.reachable ?? true) && !allOpen,
        ...this.leases.details(u.name),
        ...this.kvCache.figures(u.name),
      };
    });
  }

  isHealthy(key = 'upstreams') {
    const indicator = this.health.check(key);
    const upstreams = this.details();
    const usable = upstreams.filter((u) => u.can_take_traffic).length;
    return usable > 0 ? indicator.up({ usable, upstreams }) : indicator.down({ usable, upstreams });
  }
}
