import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { routingConfig } from '../config/sections';
import { UpstreamLoadPoller } from './upstream-load.poller';

/** Per-upstream inference-server figures as /health and the dashboard show them (null: not reported). */
export interface InferenceFigures {
  kv_cache_usage: number | null;
  kv_cache_pressure: boolean;
  prefix_cache_hit_rate: number | null;
  upstream_waiting: number | null;
  upstream_running: number | null;
}

/**
 * Whether an upstream's KV cache is nearly full (polled `vllm:kv_cache_usage_perc` at or above
 * `KV_CACHE_PRESSURE_THRESHOLD`): routing scores such an upstream down before its queue grows.
 */
@Injectable()
export class KvCachePressure {
  constructor(
    private readonly poller: UpstreamLoadPoller,
    @Inject(routingConfig.KEY) private readonly config: Pick<ConfigType<typeof routingConfig>, 'kvCachePressureThreshold'>,
  ) {}

  /** True when the upstream's fresh KV-cache use is at or above the threshold. */
  pressured(upstream: string): boolean {
    const usage = this.poller.kvCacheUsage(upstream);
    return usage !== undefined && usage >= this.config.kvCachePressureThreshold;
  }

  /** The upstream's polled figures for /health and the dashboard. */
  figures(upstream: string): InferenceFigures {
    const polled = this.poller.latest(upstream);
    const round = (v: number | undefined) => (v === undefined ? null : Math.round(v * 1000) / 1000);
    return {
      kv_cache_usage: round(polled?.load.kvCacheUsage),
      kv_cache_pressure: this.pressured(upstream),
      prefix_cache_hit_rate: round(polled?.prefixCacheHitRate),
      upstream_waiting: polled?.load.waiting ?? null,
      upstream_running: polled?.load.running ?? null,
    };
  }
}
