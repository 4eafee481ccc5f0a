import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { upstreamConfig } from '../config/sections';
import type { HedgePolicy, UpstreamTopology } from '../config/upstreams-file';
import type { UpstreamDefinition } from './upstream.types';

/** Token under which the upstream list is provided once the simulator (if any) has started. */
export const UPSTREAM_TOPOLOGY = Symbol('UPSTREAM_TOPOLOGY');

/**
 * The configured upstreams, their models and the fallback chains. The only place that knows which
 * upstream serves which model.
 */
@Injectable()
export class UpstreamRegistry {
  private readonly byName = new Map<string, UpstreamDefinition>();

  constructor(
    @Inject(UPSTREAM_TOPOLOGY)
    private readonly topology: UpstreamTopology,
  ) {
    for (const upstream of topology.upstreams) this.byName.set(upstream.name, upstream);
  }

  all(): UpstreamDefinition[] {
    return this.topology.upstreams;
  }

  get(name: string): UpstreamDefinition | undefined {
    return this.byName.get(name);
  }

  /** Models named in the configuration (empty when an upstream accepts any model). */
  configuredModels(): string[] {
    return [...new Set(this.topology.upstreams.flatMap((u) => u.models))];
  }

  /** Upstreams able to serve `model`: those listing it, then those that accept any model. */
  servingModel(model: string): UpstreamDefinition[] {
    const listed = this.topology.upstreams.filter((u) => u.models.includes(model));
    const open = this.topology.upstreams.filter((u) => u.models.length === 0);
    return [...listed, ...open];
  }

  /** The ordered fallback models for `model` (not including itself). */
  fallbacksFor(model: string): string[] {
    return (this.topology.fallbacks[model] ?? []).filter((m) => m !== model);
  }

  /** The model's hedging (UPSTREAMS_FILE `hedge`), if its attempts are hedged. */
  hedgeFor(model: string): HedgePolicy | undefined {
    return this.topology.hedge?.[model];
  }

  /** Whether any upstream may be asked for `model`. */
  knows(model: string): boolean {
    return this.servingModel(model).length > 0;
  }
}

/** Builds the topology from a single UPSTREAM_URL or the parsed UPSTREAMS_FILE. */
export function topologyFromConfig(config: Pick<ConfigType<typeof upstreamConfig>, 'url' | 'apiKey' | 'topology'>) {
  if (config.topology) return config.topology;
  if (config.url) {
    return {
      upstreams: [{ name: 'primary', baseUrl: config.url.replace(/\/+$/, ''), apiKey: config.apiKey, models: [], weight: 1 }],
      fallbacks: {},
    };
  }
  return undefined;
}
