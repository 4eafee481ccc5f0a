import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { SchedulerRegistry } from '@nestjs/schedule';
import { BreakerService } from '../breaker/breaker.service';
import { OutcomeWindow } from '../breaker/outcome-window';
import { Clock } from '../common/clock';
import { Listeners } from '../common/listeners';
import { adaptiveConfig, queueConfig } from '../config/sections';
import { QueueFigures } from '../queue/queue-figures.service';
import { UpstreamOutcomes } from '../upstream/upstream-outcomes';
import { AbandonedTracker } from './abandoned-tracker';
import { computeHealthScore, HealthInputs, Strategy, StrategySelector } from './health-score';
import { capMaxTokens, strategyEffects, StrategyEffects } from './strategy-effects';

const EVALUATE_MS = 250;
/** Admission re-evaluates the strategy on demand when the last evaluation is older than this. */
const FRESH_MS = 100;
const RECENT_WINDOW_MS = 60_000;
const UPSTREAM_LOAD_STALE_MS = 30_000;
/** Fewer recent outcomes than this say nothing about error rates (one failure on an idle gateway is not 100 %). */
const MIN_OUTCOMES_FOR_RATES = 10;

/** Upstream load figures polled from its own /metrics (vLLM). */
export interface UpstreamLoad {
  waiting: number;
  running: number;
  kvCacheUsage?: number;
  observedAt: number;
}

/**
 * The seed's AdaptiveProcessor: keeps the figures that describe how loaded Bulwark and its upstreams
 * are, turns them into a health score and a strategy (with hysteresis), and says what the strategy
 * allows. Also owns the abandoned-request counters and their scheduled reset.
 */
@Injectable()
export class AdaptiveService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(AdaptiveService.name);
  readonly abandoned: AbandonedTracker;
  private readonly selector: StrategySelector;
  /** Recent upstream outcomes: failure flag = error, slow flag = timeout. */
  private readonly recent: OutcomeWindow;
  private score = 1;
  private upstreamLoad?: UpstreamLoad;
  /** Counters since the last scheduled reset, for /health. */
  private totals = { total: 0, successful: 0, timeouts: 0, admitted: 0, rejected: 0, optimized: 0 };
  private readonly strategyListeners = new Listeners<[to: Strategy, from: Strategy, score: number]>('strategy change', this.logger);
  private timer?: NodeJS.Timeout;
  private evaluatedAt = Number.NEGATIVE_INFINITY;

  constructor(
    @Inject(adaptiveConfig.KEY) private readonly config: ConfigType<typeof adaptiveConfig>,
    @Inject(queueConfig.KEY) private readonly queueSettings: ConfigType<typeof queueConfig>,
    private readonly figures: QueueFigures,
    private readonly breakers: BreakerService,
    private readonly outcomes: UpstreamOutcomes,
    private readonly scheduler: SchedulerRegistry,
    private readonly clock: Clock,
  ) {
    this.abandoned = new AbandonedTracker({ maxAbandoned: config.maxAbandoned, resetIntervalMs: config.resetIntervalMs }, clock);
    this.selector = new StrategySelector(undefined, undefined, undefined, clock);
    this.recent = new OutcomeWindow(1000, RECENT_WINDOW_MS);
  }

  onApplicationBootstrap(): void {
    this.outcomes.onOutcome((event) => {
      if (event.outcome === 'refused' || event.outcome === 'cancelled' || event.outcome === 'client_error') return;
      const timeout = event.outcome === 'timeout';
      const failure = event.outcome === 'failure' || timeout;
      this.recent.record({ failure: failure && !timeout, slow: timeout }, this.clock.now());
      this.totals.total++;
      if (!failure) this.totals.successful++;
      if (timeout) this.totals.timeouts++;
      if (event.abandoned) this.abandoned.record();
    });
    // The interval comes from config, so it is registered here rather than with @Interval().
    const reset = setInterval(() => this.resetCounters(), this.config.resetIntervalMs);
    this.scheduler.addInterval('abandoned-reset', reset);
    this.timer = setInterval(() => this.evaluate(), EVALUATE_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** The scheduled reset of the seed's Stage 2: abandoned counters and the period's totals. */
  resetCounters(): void {
    this.abandoned.reset();
    this.totals = { total: 0, successful: 0, timeouts: 0, admitted: 0, rejected: 0, optimized: 0 };
    this.logger.log('abandoned-request counters reset');
  }

  onStrategyChange(listener: (to: Strategy, from: Strategy, score: number) => void): void {
    this.strategyListeners.add(listener);
  }

  setUpstreamLoad(load: UpstreamLoad): void {
    this.upstreamLoad = load;
  }

  inputs(): HealthInputs {
    const queue = this.figures.snapshot();
    const { calls, failures, slowCalls } = this.recent.counts(this.clock.now());
    const views = this.breakers.list();
    return {
      queueFill: Math.min(1, queue.waiting / this.queueSettings.maxQueueSize),
      inflightUse: Math.min(1, queue.active / this.queueSettings.maxConcurrent),
      abandonedUse: this.abandoned.capacityUsed(),
      errorRate: calls >= MIN_OUTCOMES_FOR_RATES ? failures / calls : 0,
      timeoutRate: calls >= MIN_OUTCOMES_FOR_RATES ? slowCalls / calls : 0,
      openBreakerShare: views.length ? views.filter((v) => v.state === 'open').length / views.length : 0,
      upstreamLoad: this.upstreamLoad,
    };
  }

  /** Recomputes the score and strategy; logs and notifies on every change. */
  evaluate(): Strategy {
    this.evaluatedAt = this.clock.now();
    this.score = computeHealthScore(this.inputs(), this.clock.now(), UPSTREAM_LOAD_STALE_MS);
    const update = this.selector.update(this.score);
    if (update.changed) {
      this.logger.warn(`strategy ${update.previous} -> ${update.strategy} (health score ${this.score})`);
      this.strategyListeners.emit(update.strategy, update.previous, this.score);
    }
    return update.strategy;
  }

  get strategy(): Strategy {
    return this.selector.current;
  }

  get healthScore(): number {
    return this.score;
  }

  effects(): StrategyEffects {
    return strategyEffects(this.selector.current, this.config.degradedMaxTokens);
  }

  /**
   * The effects of the strategy as of now: re-evaluated when the last evaluation is older than 100 ms,
   * so that a strategy's dwell ends when it is due rather than at the next periodic evaluation.
   */
  freshEffects(): StrategyEffects {
    if (this.clock.now() - this.evaluatedAt >= FRESH_MS) this.evaluate();
    return this.effects();
  }

  /** Applies the strategy's max_tokens cap to a body; counts it towards optimization_rate. */
  shapeBody(body: Record<string, unknown>, api: 'chat' | 'responses' = 'chat'): Record<string, unknown> {
    const { body: shaped, capped } = capMaxTokens(body, this.effects().maxTokensCap, api);
    if (capped) this.totals.optimized++;
    return shaped;
  }

  noteAdmission(admitted: boolean): void {
    if (admitted) this.totals.admitted++;
    else this.totals.rejected++;
  }

  /** The `graceful_degradation` section of /health, with the original server's field names. */
  gracefulDegradation() {
    const queue = this.figures.snapshot();
    const t = this.totals;
    const decided = t.admitted + t.rejected;
    const pct = (n: number, d: number) => (d ? Math.round((n / d) * 10_000) / 100 : 0);
    const capacityPercent = pct(queue.waiting, this.queueSettings.maxQueueSize);
    return {
      health_score: this.score,
      current_strategy: this.selector.current,
      rejection_rate: pct(t.rejected, decided),
      optimization_rate: pct(t.optimized, t.admitted),
      queue_statistics: {
        current_size: queue.waiting,
        capacity_percent: capacityPercent,
        status: capacityPercent >= 100 ? 'full' : capacityPercent >= this.config.queueRejectionThreshold * 100 ? 'shedding' : 'healthy',
      },
      upstream_statistics: {
        total_requests: t.total,
        successful_requests: t.successful,
        timeout_requests: t.timeouts,
        success_rate: t.total ? pct(t.successful, t.total) : 100,
        timeout_rate: pct(t.timeouts, t.total),
        abandoned_requests: this.abandoned.totalSinceReset(),
        abandoned_capacity_used: Math.round(this.abandoned.capacityUsed() * 10_000) / 100,
        time_until_reset: Math.ceil(this.abandoned.timeUntilResetMs() / 1000),
        rejection_threshold: Math.round(this.config.abandonedRejectionThreshold * 100),
      },
    };
  }
}
