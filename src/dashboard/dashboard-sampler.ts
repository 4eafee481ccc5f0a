import type { Priority } from '../common/priority';
import type { Strategy } from '../adaptive/health-score';
import type { BreakerState } from '../breaker/circuit-breaker';
import type { UpstreamOutcome } from '../upstream/upstream-outcomes';
import type { BatchFiguresSnapshot } from '../batch/batch-figures';

/** The live state read at each tick, from the services that own it. */
export interface LiveState {
  byPriority: Record<Priority, number>;
  active: number;
  breakers: { key: string; state: BreakerState; calls: number; failures: number; retryInMs: number }[];
  abandoned: number;
  abandonedCapacityPercent: number;
  timeUntilResetS: number;
  strategy: Strategy;
  healthScore: number;
  /** Requests waiting per client key, by configured name, largest first (fair share orders them). */
  waitingByKey: { name: string; waiting: number }[];
  /** Remaining tokens of each key with token limits, per period (read from Redis every 2 s). */
  tokenBudgets?: { name: string; period: string; limit: number; remaining: number }[];
  /** Per upstream: calls in flight (every instance) and what its own /metrics said; optional for callers without upstreams. */
  upstreams?: {
    name: string;
    inFlight: number | null;
    kvCacheUsage: number | null;
    kvCachePressure: boolean;
    prefixCacheHitRate: number | null;
    waiting: number | null;
  }[];
  /** Background responses across the cluster by status (queued and in_progress now; final ones so far). */
  backgroundResponses?: Record<string, number>;
  /** Batches and their lines (below every interactive priority, on idle slots only). */
  batches: BatchFiguresSnapshot;
}

/** One point of the dashboard: the state at `t` plus rates over the tick that ended at `t`. */
export interface DashboardSample extends Omit<LiveState, 'byPriority'> {
  t: number;
  queue: Record<Priority, number>;
  waiting: number;
  admittedPerS: number;
  refusedPerS: number;
  refusedByReason: Record<string, number>;
  /** Upstream calls per second by outcome (breaker refusals not included). */
  upstreamPerS: { success: number; failure: number; timeout: number };
  /** Mean duration of the upstream calls that ended in the tick; null when none did. */
  upstreamLatencyMs: number | null;
  /** Mean time to first token of the streams that ended in the tick; null when none did. */
  ttftMs: number | null;
  /** Counts since the process started. */
  totals: { admitted: number; refused: number; upstreamCalls: number };
}

/**
 * Turns events (admissions, refusals, upstream outcomes) and the live state into one sample per
 * tick. Pure: the caller owns the timer and the clock, and keeps the history.
 */
export class DashboardSampler {
  private admitted = 0;
  private refused = new Map<string, number>();
  private calls = { success: 0, failure: 0, timeout: 0 };
  private latency = { sum: 0, n: 0 };
  private ttft = { sum: 0, n: 0 };
  private readonly totals = { admitted: 0, refused: 0, upstreamCalls: 0 };
  private lastTakenAt: number;

  constructor(startedAt: number) {
    this.lastTakenAt = startedAt;
  }

  noteAdmitted(): void {
    this.admitted++;
    this.totals.admitted++;
  }

  noteRefused(reason: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
    this.totals.refused++;
  }

  noteOutcome(event: Pick<UpstreamOutcome, 'outcome' | 'durationMs' | 'timeToFirstTokenMs'>): void {
    if (event.outcome !== 'success' && event.outcome !== 'failure' && event.outcome !== 'timeout') return;
    this.calls[event.outcome]++;
    this.totals.upstreamCalls++;
    this.latency.sum += event.durationMs;
    this.latency.n++;
    if (event.timeToFirstTokenMs !== undefined) {
      this.ttft.sum += event.timeToFirstTokenMs;
      this.ttft.n++;
    }
  }

  /** Closes the current tick at `now` and starts the next. */
  take(state: LiveState, now: number): DashboardSample {
    const seconds = Math.max(0.001, (now - this.lastTakenAt) / 1000);
    const rate = (n: number) => Math.round((n / seconds) * 100) / 100;
    const refusedByReason: Record<string, number> = {};
    let refused = 0;
    for (const [reason, n] of this.refused) {
      refusedByReason[reason] = rate(n);
      refused += n;
    }
    const { byPriority, ...rest } = state;
    const sample: DashboardSample = {
      ...rest,
      t: now,
      queue: { ...byPriority },
      waiting: byPriority.high + byPriority.normal + byPriority.low,
      admittedPerS: rate(this.admitted),
      refusedPerS: rate(refused),
      refusedByReason,
      upstreamPerS: { success: rate(this.calls.success), failure: rate(this.calls.failure), timeout: rate(this.calls.timeout) },
      upstreamLatencyMs: this.latency.n ? Math.round(this.latency.sum / this.latency.n) : null,
      ttftMs: this.ttft.n ? Math.round(this.ttft.sum / this.ttft.n) : null,
      totals: { ...this.totals },
    };
    this.admitted = 0;
    this.refused = new Map();
    this.calls = { success: 0, failure: 0, timeout: 0 };
    this.latency = { sum: 0, n: 0 };
    this.ttft = { sum: 0, n: 0 };
    this.lastTakenAt = now;
    return sample;
  }
}
