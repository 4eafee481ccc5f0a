import type { Clock } from '../common/clock';

/** Length of one bucket of the sliding window over which the hedge budget is counted. */
export const HEDGE_WINDOW_MS = 10_000;

/** Calls and hedges of two consecutive buckets: the current one and the one before. */
export interface HedgeCounts {
  calls: number;
  hedges: number;
  previousCalls: number;
  previousHedges: number;
}

/**
 * Whether one more hedge fits: hedges over the last window (the previous bucket weighted by how much
 * of it still lies within the window, as a sliding-window counter does) plus this one must stay within
 * `ratio` of the calls over the same window. No calls, no hedges.
 */
export function hedgeFits(counts: HedgeCounts, previousWeight: number, ratio: number): boolean {
  const calls = counts.calls + counts.previousCalls * previousWeight;
  const hedges = counts.hedges + counts.previousHedges * previousWeight;
  return hedges + 1 <= ratio * calls;
}

/** The bucket `now` falls in and the weight of the previous one (1 at a bucket's start, 0 at its end). */
export function bucketOf(now: number): { bucket: number; previousWeight: number } {
  const bucket = Math.floor(now / HEDGE_WINDOW_MS);
  return { bucket, previousWeight: 1 - (now - bucket * HEDGE_WINDOW_MS) / HEDGE_WINDOW_MS };
}

/**
 * One instance's own hedge budget: hedges at most `ratio` of its calls over a sliding window of
 * {@link HEDGE_WINDOW_MS}. Pure arithmetic on an injected clock; the shared budget in Redis uses the
 * same rule, and this one stands in while Redis is away (each instance within its share keeps the
 * whole fleet within it).
 */
export class HedgeBudget {
  private bucket = Number.NaN;
  private counts: HedgeCounts = { calls: 0, hedges: 0, previousCalls: 0, previousHedges: 0 };

  constructor(
    private readonly ratio: number,
    private readonly clock: Clock,
  ) {}

  recordCall(): void {
    this.roll();
    this.counts.calls++;
  }

  /** Takes one hedge from the budget when it fits; false (and nothing taken) otherwise. */
  tryTake(): boolean {
    const { previousWeight } = this.roll();
    if (!hedgeFits(this.counts, previousWeight, this.ratio)) return false;
    this.counts.hedges++;
    return true;
  }

  private roll(): { previousWeight: number } {
    const { bucket, previousWeight } = bucketOf(this.clock.now());
    if (bucket !== this.bucket) {
      const adjacent = bucket === this.bucket + 1;
      this.counts = {
        calls: 0,
        hedges: 0,
        previousCalls: adjacent ? this.counts.calls : 0,
        previousHedges: adjacent ? this.counts.hedges : 0,
      };
      this.bucket = bucket;
    }
    return { previousWeight };
  }
}
