import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { request } from 'undici';
import { Clock } from '../common/clock';
import { upstreamConfig } from '../config/sections';
import { UpstreamLeases } from '../upstream/upstream-leases.service';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import type { UpstreamDefinition } from '../upstream/upstream.types';
import { AdaptiveService } from './adaptive.service';
import { combineLoads, parseVllmLoad, VllmLoad } from './vllm-load';

const MAX_TIMEOUT_MS = 2000;
/** vLLM's /metrics holds histograms and is a few hundred KB at most; anything far larger is not it. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** An upstream without vLLM metrics (OpenAI, llama.cpp without --metrics) is asked again this much later. */
const UNSUPPORTED_RETRY_MS = 10 * 60_000;

/**
 * Polls every upstream's own `/metrics` (the origin of its base URL, as vLLM serves it) every
 * `UPSTREAM_METRICS_POLL_MS`, feeds the summed load to {@link AdaptiveService.setUpstreamLoad} and
 * each upstream's own queue to {@link UpstreamLeases.setPolledQueue} (least-loaded routing).
 * Upstreams without such figures are left alone quietly; a round in which none answers reports nothing,
 * so the adaptive figures age out rather than freeze.
 */
@Injectable()
export class UpstreamLoadPoller implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(UpstreamLoadPoller.name);
  private readonly unsupportedUntil = new Map<string, number>();
  private readonly stopped = new AbortController();
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(
    @Inject(upstreamConfig.KEY) private readonly config: ConfigType<typeof upstreamConfig>,
    private readonly registry: UpstreamRegistry,
    private readonly adaptive: AdaptiveService,
    private readonly clock: Clock,
    private readonly leases?: UpstreamLeases,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.metricsPollMs <= 0) return;
    this.timer = setInterval(() => void this.pollOnce(), this.config.metricsPollMs);
    this.timer.unref();
    void this.pollOnce();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
    this.stopped.abort();
  }

  /** One round over every upstream; resolves with the combined load it reported (if any). */
  async pollOnce(): Promise<VllmLoad | undefined> {
    if (this.polling || this.stopped.signal.aborted) return undefined;
    this.polling = true;
    try {
      const now = this.clock.now();
      const due = this.registry.all().filter((u) => (this.unsupportedUntil.get(u.name) ?? 0) <= now);
      const read = await Promise.all(due.map((u) => this.read(u)));
      // Each upstream's own queue weighs in least-loaded routing; the sum feeds the health score.
      read.forEach((load, i) => load && this.leases?.setPolledQueue(due[i].name, load.waiting));
      const loads = read.filter((l): l is VllmLoad => l !== undefined);
      const combined = combineLoads(loads);
      if (combined) this.adaptive.setUpstreamLoad({ ...combined, observedAt: this.clock.now() });
      return combined;
    } finally {
      this.polling = false;
    }
  }

  private async read(upstream: UpstreamDefinition): Promise<VllmLoad | undefined> {
    const url = `${new URL(upstream.baseUrl).origin}/metrics`;
    const timeoutMs = Math.min(MAX_TIMEOUT_MS, this.config.metricsPollMs);
    try {
      const response = await request(url, {
        method: 'GET',
        headers: upstream.apiKey ? { authorization: `Bearer ${upstream.apiKey}`, accept: 'text/plain' } : { accept: 'text/plain' },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), this.stopped.signal]),
      });
      if (response.statusCode !== 200) {
        await response.body.dump();
        return this.unsupported(upstream, `answered ${response.statusCode}`);
      }
      let text = '';
      for await (const chunk of response.body) {
        text += (chunk as Buffer).toString('utf8');
        if (text.length > MAX_BODY_BYTES) {
          response.body.destroy();
          return this.unsupported(upstream, 'sent an oversized /metrics body');
        }
      }
      const load = parseVllmLoad(text);
      return load ?? this.unsupported(upstream, 'has no vLLM load figures');
    } catch (error) {
      // Unreachable upstreams are the probe's business (and the health score's, through errors).
      this.logger.debug(`upstream ${upstream.name} /metrics: ${(error as Error).message}`);
      return undefined;
    }
  }

  private unsupported(upstream: UpstreamDefinition, why: string): undefined {
    if (!this.unsupportedUntil.has(upstream.name)) {
      this.logger.debug(`upstream ${upstream.name} ${why} at /metrics: not polling its load for ${UNSUPPORTED_RETRY_MS / 60_000} min`);
    }
    this.unsupportedUntil.set(upstream.name, this.clock.now() + UNSUPPORTED_RETRY_MS);
    return undefined;
  }
}
