import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { AdaptiveService } from '../adaptive/adaptive.service';
import { AdmissionService } from '../adaptive/admission.service';
import { BreakerService } from '../breaker/breaker.service';
import type { BreakerState } from '../breaker/circuit-breaker';
import { Clock } from '../common/clock';
import { Listeners } from '../common/listeners';
import { adaptiveConfig, queueConfig } from '../config/sections';
import { QueueFigures } from '../queue/queue-figures.service';
import { AuthService } from '../auth/auth.service';
import { TokenBudgetsService } from '../auth/token-budgets.service';
import { BatchFigures } from '../batch/batch-figures';
import { UpstreamOutcomes } from '../upstream/upstream-outcomes';
import { UpstreamHealthIndicator } from '../upstream/upstream.health';
import { ResponseFigures } from '../responses/response-figures';
import { DashboardSample, DashboardSampler, LiveState } from './dashboard-sampler';

/** One tick a second; two minutes of history. */
export const TICK_MS = 1000;
const HISTORY = 120;
/** Breakers shown per sample, the worst first: a page, not an inventory. */
const MAX_BREAKERS = 50;
const SEVERITY: Record<BreakerState, number> = { open: 2, half_open: 1, closed: 0 };

/** What `GET /dashboard/data` answers and the SSE stream opens with. */
export interface DashboardData {
  generated_at: string;
  config: { max_queue_size: number; max_concurrent: number; reset_interval_s: number; tick_ms: number };
  history: DashboardSample[];
}

/**
 * Samples Bulwark's own figures once a second for the live dashboard: keeps the last two minutes and
 * hands every new sample to the open streams. Reads cached figures only (the background-response
 * figures are refreshed beside the tick, never waited for); nothing here touches an upstream.
 */
@Injectable()
export class DashboardService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly sampler: DashboardSampler;
  private readonly history: DashboardSample[] = [];
  private readonly listeners = new Listeners<[DashboardSample]>('dashboard sample', new Logger(DashboardService.name));
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly figures: QueueFigures,
    private readonly admission: AdmissionService,
    private readonly adaptive: AdaptiveService,
    private readonly breakers: BreakerService,
    private readonly outcomes: UpstreamOutcomes,
    private readonly clock: Clock,
    @Inject(queueConfig.KEY) private readonly queue: ConfigType<typeof queueConfig>,
    @Inject(adaptiveConfig.KEY) private readonly adaptiveSettings: ConfigType<typeof adaptiveConfig>,
    private readonly auth: AuthService,
    private readonly budgets: TokenBudgetsService,
    private readonly upstreams: UpstreamHealthIndicator,
    private readonly responseFigures: ResponseFigures,
    private readonly batches: BatchFigures,
  ) {
    this.sampler = new DashboardSampler(clock.now());
  }

  onApplicationBootstrap(): void {
    this.admission.onAdmission(() => this.sampler.noteAdmitted());
    this.admission.onRejection((reason) => this.sampler.noteRefused(reason));
    this.outcomes.onOutcome((event) => this.sampler.noteOutcome(event));
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** Takes a sample now, keeps it and tells every listener. */
  tick(): DashboardSample {
    void this.responseFigures.refresh();
    const sample = this.sampler.take(this.liveState(), this.clock.now());
    this.history.push(sample);
    if (this.history.length > HISTORY) this.history.splice(0, this.history.length - HISTORY);
    this.listeners.emit(sample);
    return sample;
  }

  /** Subscribes to new samples; returns the unsubscribe function. */
  subscribe(listener: (sample: DashboardSample) => void): () => void {
    return this.listeners.add(listener);
  }

  /** The configuration the page needs and the last two minutes of samples. */
  data(): DashboardData {
    return {
      generated_at: new Date(this.clock.now()).toISOString(),
      config: {
        max_queue_size: this.queue.maxQueueSize,
        max_concurrent: this.queue.maxConcurrent,
        reset_interval_s: Math.round(this.adaptiveSettings.resetIntervalMs / 1000),
        tick_ms: TICK_MS,
      },
      history: [...this.history],
    };
  }

  private liveState(): LiveState {
    const queue = this.figures.snapshot();
    const abandoned = this.adaptive.abandoned;
    return {
      byPriority: queue.byPriority,
      active: queue.active,
      breakers: this.breakers
        .list()
        .sort((a, b) => SEVERITY[b.state] - SEVERITY[a.state] || a.key.localeCompare(b.key))
        .slice(0, MAX_BREAKERS)
        .map((v) => ({ key: v.key, state: v.state, calls: v.calls, failures: v.failures, retryInMs: v.retryInMs })),
      abandoned: abandoned.totalSinceReset(),
      abandonedCapacityPercent: Math.round(abandoned.capacityUsed() * 1000) / 10,
      timeUntilResetS: Math.ceil(abandoned.timeUntilResetMs() / 1000),
      strategy: this.adaptive.strategy,
      healthScore: this.adaptive.healthScore,
      waitingByKey: [...this.auth.clientIdentities(), { id: 'anonymous', name: 'anonymous' }]
        .map((client) => ({ name: client.name, waiting: this.figures.waitingOf(client.id) }))
        .filter((k) => k.waiting > 0)
        .sort((a, b) => b.waiting - a.waiting || a.name.localeCompare(b.name))
        .slice(0, MAX_BREAKERS),
      tokenBudgets: this.budgets
        .snapshot()
        .budgets.slice(0, MAX_BREAKERS)
        .map((b) => ({ name: b.key_name, period: b.period, limit: b.limit, remaining: b.remaining })),
      upstreams: this.upstreams
        .details()
        .slice(0, MAX_BREAKERS)
        .map((u) => ({
          name: u.name,
          inFlight: u.in_flight ?? null,
          kvCacheUsage: u.kv_cache_usage,
          kvCachePressure: u.kv_cache_pressure,
          prefixCacheHitRate: u.prefix_cache_hit_rate,
          waiting: u.upstream_waiting,
        })),
      backgroundResponses: { ...this.responseFigures.snapshot() },
      batches: this.batches.snapshot(),
    };
  }
}
