import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { request } from 'undici';
import { Clock } from '../common/clock';
import { Listeners } from '../common/listeners';
import { upstreamConfig } from '../config/sections';
import { UpstreamLeases } from './upstream-leases.service';
import { UpstreamRegistry } from './upstream-registry';
import type { UpstreamDefinition } from './upstream.types';
import { combineLoads, parseVllmLoad, VllmLoad } from './vllm-load';

const MAX_TIMEOUT_MS = 2000;
/** vLLM's /metrics holds histograms and is a few hundred KB at most; anything far larger is not it. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** An upstream without vLLM metrics (OpenAI, llama.cpp without --metrics) is asked again this much later. */
const UNSUPPORTED_RETRY_MS = 10 * 60_000;
/** Polled figures older than this describe nothing any more. */
const POLLED_STALE_MS = 30_000;

/** The fleet's summed load after one polling round, when at least one upstream answered. */
export interface PolledFleetLoad {
  waiting: number;
  running: number;
  kvCacheUsage?: number;
  observedAt: number;
}

/** What one upstream's last poll said. */
export interface PolledUpstream {
  load: VllmLoad;
  /** Share of prefix-cache queries that hit between the last two polls (vLLM's counters), when known. */
  prefixCacheHitRate?: number;
  observedAt: number;
}

/**
 * Polls every upstream's own `/metrics` (the origin of its base URL, as vLLM serves it) every
 * `UPSTREAM_METRICS_POLL_MS`: keeps each upstream's figures (queue, KV-cache use, prefix-cache hit rate)
 * for routing and /health, feeds each upstream's queue to {@link UpstreamLeases.setPolledQueue}, and
 * tells {@link onRound} listeners (the adaptive health score) the summed load. Upstreams without such
 * figures are left alone quietly; a round in which none answers reports nothing, so the figures age
 * out rather than freeze.
 */
@Injectable()
export class UpstreamLoadPoller implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(UpstreamLoadPoller.name);
  private readonly unsupportedUntil = new Map<string, number>();
  private readonly stopped = new AbortController();
  private timer?: NodeJS.Timeout;
  private polling = false;
  private readonly latestByUpstream = new Map<string, PolledUpstream>();
  private readonly roundListeners = new Listeners<[load: PolledFleetLoad]>('upstream load round', this.logger);

  constructor(
    @Inject(upstreamConfig.KEY) private readonly config: Pick<ConfigType<typeof upstreamConfig>, 'metricsPollMs'>,
    private readonly registry: UpstreamRegistry,
    private readonly clock: Clock,
    private readonly leases?: UpstreamLeases,
  ) {}

  /** Calls `listener` with the fleet's summed load after every round in which an upstream answered. */
  onRound(listener: (load: PolledFleetLoad) => void): () => void {
    return this.roundListeners.add(listener);
  }

  /** The upstream's last polled figures, unless they are older than 30 s. */
  latest(upstream: string): PolledUpstream | undefined {
    const polled = this.latestByUpstream.get(upstream);
    return polled && this.clock.now() - polled.observedAt <= POLLED_STALE_MS ? polled : undefined;
  }

  /** The upstream's fresh KV-cache use (0..1), when it reports one. */
  kvCacheUsage(upstream: string): number | undefined {
    return this.latest(upstream)?.load.kvCacheUsage;
  }

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
  async pollOnce(): Promise<Omit<PolledFleetLoad, 'observedAt'> | undefined> {
    if (this.polling || this.stopped.signal.aborted) return undefined;
    this.polling = true;
    try {
      const now = this.clock.now();
      const due = this.registry.all().filter((u) => (this.unsupportedUntil.get(u.name) ?? 0) <= now);
      const read = await Promise.all(due.map((u) => this.read(u)));
      // Each upstream's own queue weighs in least-loaded routing; the sum feeds the health score.
      read.forEach((load, i) => load && this.remember(due[i].name, load));
      const loads = read.filter((l): l is VllmLoad => l !== undefined);
      const combined = combineLoads(loads);
      if (combined) this.roundListeners.emit({ ...combined, observedAt: this.clock.now() });
      return combined;
    } finally {
      this.polling = false;
    }
  }

  private remember(upstream: string, load: VllmLoad): void {
    const previous = this.latestByUpstream.get(upstream);
    let prefixCacheHitRate = previous?.prefixCacheHitRate;
    if (load.prefixCacheQueries !== undefined && load.prefixCacheHits !== undefined) {
      // Counters since the server started: the rate is over the last interval (a restart resets them).
      const queries = load.prefixCacheQueries - (previous?.load.prefixCacheQueries ?? 0);
      const hits = load.prefixCacheHits - (previous?.load.prefixCacheHits ?? 0);
      if (queries > 0 && hits >= 0) prefixCacheHitRate = Math.min(1, hits / queries);
      else if (queries < 0 && load.prefixCacheQueries > 0) prefixCacheHitRate = load.prefixCacheHits / load.prefixCacheQueries;
    }
    this.latestByUpstream.set(upstream, { load, observedAt: this.clock.now(), ...(prefixCacheHitRate === undefined ? {} : { prefixCacheHitRate }) });
    this.leases?.setPolledQueue(upstream, load.waiting);
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
