import { Clock } from '../common/clock';

/** Settings of an {@link AbandonedTracker}. */
export interface AbandonedTrackerOptions {
  /** Abandoned calls that count as full capacity (capacityUsed() = 1). Must be > 0. */
  maxAbandoned: number;
  /** Period of the external scheduled `reset()` call, in ms. Must be > 0. */
  resetIntervalMs: number;
}

/**
 * Counts abandoned upstream calls: calls that outlived their deadline and could not be confirmed
 * stopped, so they may still hold an upstream slot.
 *
 * The seed zeroes its counter every reset interval; here an external scheduler calls `reset()` on that
 * period, and between resets the count also decays exponentially so one burst does not lock traffic out
 * until the next reset. Decay is computed lazily from the clock on each read; there are no timers.
 */
export class AbandonedTracker {
  /**
   * Half-life of the decayed count: a quarter of the reset interval, so by the time the scheduled reset
   * arrives a burst has already faded to 1/16 of its size and the reset is only a backstop, while a
   * burst still weighs for long enough (minutes with the default 5-minute interval) to shed load.
   */
  readonly halfLifeMs: number;
  private readonly maxAbandoned: number;
  private readonly resetIntervalMs: number;
  /** Decayed count as of `updatedAt`. */
  private value = 0;
  private updatedAt: number;
  private total = 0;
  private lastResetAt: number;

  /** @throws RangeError when `maxAbandoned` or `resetIntervalMs` is not a positive finite number. */
  constructor(
    options: AbandonedTrackerOptions,
    private readonly clock: Clock,
  ) {
    if (!(options.maxAbandoned > 0) || !Number.isFinite(options.maxAbandoned)) {
      throw new RangeError(`maxAbandoned must be a positive number, got ${options.maxAbandoned}`);
    }
    if (!(options.resetIntervalMs > 0) || !Number.isFinite(options.resetIntervalMs)) {
      throw new RangeError(`resetIntervalMs must be a positive number, got ${options.resetIntervalMs}`);
    }
    this.maxAbandoned = options.maxAbandoned;
    this.resetIntervalMs = options.resetIntervalMs;
    this.halfLifeMs = options.resetIntervalMs / 4;
    this.updatedAt = this.lastResetAt = clock.now();
  }

  /** Records one abandoned call. */
  record(): void {
    const now = this.clock.now();
    this.value = this.decayedAt(now) + 1;
    this.updatedAt = now;
    this.total += 1;
  }

  /** Decayed count of abandoned calls (fractional). */
  count(): number {
    return this.decayedAt(this.clock.now());
  }

  /** count() / maxAbandoned; can exceed 1. Feed this to graduated rejection as the fill. */
  capacityUsed(): number {
    return this.count() / this.maxAbandoned;
  }

  /** Calls recorded since the last reset, without decay; for reporting. */
  totalSinceReset(): number {
    return this.total;
  }

  /** Clears the count; called by the scheduler every `resetIntervalMs`. */
  reset(): void {
    const now = this.clock.now();
    this.value = 0;
    this.total = 0;
    this.updatedAt = now;
    this.lastResetAt = now;
  }

  /** Milliseconds until the next scheduled reset is due (0 when overdue); for `time_until_reset`. */
  timeUntilResetMs(): number {
    return Math.max(0, this.lastResetAt + this.resetIntervalMs - this.clock.now());
  }

  private decayedAt(now: number): number {
    // A clock stepping backwards must not inflate the count.
    const elapsed = Math.max(0, now - this.updatedAt);
    return this.value * Math.pow(0.5, elapsed / this.halfLifeMs);
  }
}
