import { Clock } from '../common/clock';

/** Operating mode chosen from the health score, best first. */
export type Strategy = 'healthy' | 'stressed' | 'degraded' | 'critical';

/** Every strategy, best first; the index is the severity. */
export const STRATEGIES: readonly Strategy[] = ['healthy', 'stressed', 'degraded', 'critical'];

/** Signals the health score is computed from. Shares are 0..1; out-of-range or NaN values are clamped (NaN → 0). */
export interface HealthInputs {
  /** waiting / maxQueueSize (0..1). */
  queueFill: number;
  /** in flight / maxConcurrent (0..1). */
  inflightUse: number;
  /** Abandoned capacity used (0..1+); counted up to 1. */
  abandonedUse: number;
  /** Recent upstream failure share (0..1). */
  errorRate: number;
  /** Recent upstream timeout share (0..1). */
  timeoutRate: number;
  /** Share of known breakers that are open (0..1). */
  openBreakerShare: number;
  /** Polled from vLLM /metrics; ignored when older than `staleAfterMs`. */
  upstreamLoad?: { waiting: number; kvCacheUsage?: number; observedAt: number };
}

/**
 * Weights of the health score. Each signal, at its worst, removes that fraction of the remaining
 * score: score = Π (1 − weight × signal). A product rather than a sum, so that a single saturated
 * signal can drive the score down on its own (a sum would have to split 1.0 between all signals)
 * while several moderate problems still compound.
 *
 * - `queueFill` 0.7: a full queue alone leaves 0.3, below the default critical threshold (0.35).
 * - `openBreakers` 1.0: all breakers open means nothing can be served, so the score is 0.
 * - `errorRate` 0.6: every call failing leaves 0.4 (degraded); with open breakers it reaches critical.
 * - `timeoutRate` 0.4: on top of errors, because a timeout also holds a slot for a whole deadline.
 * - `abandonedUse` 0.6: abandoned calls at capacity mean upstream slots leaked; degraded on its own.
 * - `upstreamWaiting` 0.3: requests queued inside vLLM, saturating (see {@link UPSTREAM_WAITING_HALF}).
 * - `kvCache` 0.3: KV-cache pressure above {@link KV_CACHE_KNEE}, where vLLM starts preempting.
 * - `inflightUse` 0.15: all slots busy with an empty queue is the gateway doing its job, so it only
 *   nudges the score; it matters through compounding with the queue.
 */
export const HEALTH_WEIGHTS = {
  queueFill: 0.7,
  openBreakers: 1.0,
  errorRate: 0.6,
  timeoutRate: 0.4,
  abandonedUse: 0.6,
  upstreamWaiting: 0.3,
  kvCache: 0.3,
  inflightUse: 0.15,
} as const;

/** Upstream waiting count at which the upstream-waiting signal is 0.5 (signal = w / (w + this)). */
export const UPSTREAM_WAITING_HALF = 8;

/** KV-cache usage below which it does not count; the signal rises linearly from here to 1 at full. */
export const KV_CACHE_KNEE = 0.8;

/** Default thresholds: a score below the value selects that strategy. */
export const DEFAULT_STRATEGY_THRESHOLDS: StrategyThresholds = {
  stressed: 0.8,
  degraded: 0.6,
  critical: 0.35,
};

/** Score thresholds; a score below a value selects that strategy (or a worse one). */
export interface StrategyThresholds {
  stressed: number;
  degraded: number;
  critical: number;
}

/**
 * Health score in [0,1], rounded to 2 decimals: 1 = perfect, 0 = nothing works.
 * See {@link HEALTH_WEIGHTS} for how the signals combine. The upstream load is ignored when it was
 * observed more than `staleAfterMs` before `now`, so a dead poller does not freeze an old reading.
 */
export function computeHealthScore(inputs: HealthInputs, now: number, staleAfterMs: number): number {
  const w = HEALTH_WEIGHTS;
  let score = 1;
  const apply = (weight: number, signal: number): void => {
    score *= 1 - weight * unit(signal);
  };
  apply(w.queueFill, inputs.queueFill);
  // Squared: one model's breaker open while the others (or its fallbacks) serve is a partial outage and
  // should not on its own push the gateway into critical; every breaker open still scores 0.
  apply(w.openBreakers, unit(inputs.openBreakerShare) ** 2);
  apply(w.errorRate, inputs.errorRate);
  apply(w.timeoutRate, inputs.timeoutRate);
  apply(w.abandonedUse, inputs.abandonedUse);
  apply(w.inflightUse, inputs.inflightUse);
  const load = inputs.upstreamLoad;
  if (load && now - load.observedAt <= staleAfterMs) {
    const waiting = load.waiting > 0 ? load.waiting : 0;
    apply(w.upstreamWaiting, waiting / (waiting + UPSTREAM_WAITING_HALF));
    if (load.kvCacheUsage !== undefined) {
      apply(w.kvCache, (load.kvCacheUsage - KV_CACHE_KNEE) / (1 - KV_CACHE_KNEE));
    }
  }
  return Math.round(unit(score) * 100) / 100;
}

/** Result of {@link StrategySelector.update}. */
export interface StrategyUpdate {
  strategy: Strategy;
  changed: boolean;
  previous: Strategy;
}

// Scores are rounded to 2 decimals, so 0.85 must count as reaching 0.8 + 0.05 despite float error.
const EPSILON = 1e-9;

/**
 * Picks the strategy from successive health scores, with hysteresis so it does not flap.
 *
 * Moving to a worse strategy happens as soon as the score drops below its threshold. Moving back to a
 * better one needs the score to reach that strategy's threshold + `hysteresis` AND the current strategy
 * to have lasted at least `minDwellMs`. Either move may jump several levels at once.
 */
export class StrategySelector {
  private strategy: Strategy = 'healthy';
  private since: number;

  /**
   * Parameters before `clock` have defaults; pass `undefined` to keep one.
   * @throws RangeError unless 1 >= stressed >= degraded >= critical >= 0, hysteresis >= 0 and minDwellMs >= 0.
   */
  constructor(
    private readonly thresholds: StrategyThresholds = DEFAULT_STRATEGY_THRESHOLDS,
    private readonly hysteresis: number = 0.05,
    private readonly minDwellMs: number = 2000,
    private readonly clock: Clock,
  ) {
    const { stressed, degraded, critical } = thresholds;
    if (!(stressed <= 1 && stressed >= degraded && degraded >= critical && critical >= 0)) {
      throw new RangeError(`thresholds must satisfy 1 >= stressed >= degraded >= critical >= 0`);
    }
    if (!(hysteresis >= 0)) throw new RangeError(`hysteresis must be >= 0, got ${hysteresis}`);
    if (!(minDwellMs >= 0)) throw new RangeError(`minDwellMs must be >= 0, got ${minDwellMs}`);
    this.since = clock.now();
  }

  /** Strategy in force. */
  get current(): Strategy {
    return this.strategy;
  }

  /** Feeds one score and returns the strategy in force afterwards. A NaN score changes nothing. */
  update(score: number): StrategyUpdate {
    const previous = this.strategy;
    if (Number.isNaN(score)) return { strategy: previous, changed: false, previous };
    const now = this.clock.now();
    const worse = this.classify(score, 0);
    let next = previous;
    if (severity(worse) > severity(previous)) {
      next = worse;
    } else if (now - this.since >= this.minDwellMs) {
      const better = this.classify(score, this.hysteresis - EPSILON);
      if (severity(better) < severity(previous)) next = better;
    }
    if (next !== previous) {
      this.strategy = next;
      this.since = now;
    }
    return { strategy: next, changed: next !== previous, previous };
  }

  private classify(score: number, margin: number): Strategy {
    const t = this.thresholds;
    if (score < t.critical + margin) return 'critical';
    if (score < t.degraded + margin) return 'degraded';
    if (score < t.stressed + margin) return 'stressed';
    return 'healthy';
  }
}

function severity(strategy: Strategy): number {
  return STRATEGIES.indexOf(strategy);
}

function unit(x: number): number {
  return x > 0 ? Math.min(1, x) : 0;
}
