import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Clock } from '../common/clock';
import { UpstreamClient } from './upstream-client';
import { UpstreamRegistry } from './upstream-registry';

const PROBE_INTERVAL_MS = 5000;
const PROBE_TIMEOUT_MS = 2000;

export interface UpstreamProbe {
  name: string;
  reachable: boolean;
  checkedAt: number | null;
  latencyMs: number | null;
  /** What the upstream's `GET /models` listed at the last successful probe; null before one. */
  models: string[] | null;
  error?: string;
}

/**
 * Polls each upstream's `GET /models` in the background so readiness never waits on an upstream; the
 * list it gets is also what `/v1/models` shows for upstreams configured without a model list.
 * Until the first probe answers, an upstream counts as reachable (no news is not bad news at start).
 */
@Injectable()
export class UpstreamProbeService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(UpstreamProbeService.name);
  private readonly probes = new Map<string, UpstreamProbe>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly registry: UpstreamRegistry,
    private readonly client: UpstreamClient,
    private readonly clock: Clock,
  ) {
    for (const u of registry.all()) this.probes.set(u.name, { name: u.name, reachable: true, checkedAt: null, latencyMs: null, models: null });
  }

  onApplicationBootstrap(): void {
    void this.probeAll();
    this.timer = setInterval(() => void this.probeAll(), PROBE_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  list(): UpstreamProbe[] {
    return [...this.probes.values()];
  }

  get(name: string): UpstreamProbe | undefined {
    return this.probes.get(name);
  }

  async probeAll(): Promise<void> {
    await Promise.all(
      this.registry.all().map(async (upstream) => {
        const started = this.clock.now();
        try {
          const models = await this.client.listModels(upstream, PROBE_TIMEOUT_MS);
          this.update({ name: upstream.name, reachable: true, checkedAt: this.clock.now(), latencyMs: this.clock.now() - started, models });
        } catch (error) {
          const models = this.probes.get(upstream.name)?.models ?? null;
          this.update({ name: upstream.name, reachable: false, checkedAt: this.clock.now(), latencyMs: null, models, error: (error as Error).message });
        }
      }),
    );
  }

  private update(probe: UpstreamProbe): void {
    const before = this.probes.get(probe.name);
    if (before && before.reachable !== probe.reachable && before.checkedAt !== null) {
      this.logger.warn(`upstream ${probe.name} is ${probe.reachable ? 'reachable again' : `unreachable: ${probe.error}`}`);
    }
    this.probes.set(probe.name, probe);
  }
}
