/** Outcome of one judged call, as fed to {@link OutcomeWindow.record}. */
export interface CallOutcome {
  failure: boolean;
  slow: boolean;
}

/** Aggregates over the outcomes currently inside an {@link OutcomeWindow}. */
export interface WindowCounts {
  calls: number;
  failures: number;
  slowCalls: number;
}

const FAILURE = 1;
const SLOW = 2;

/**
 * Count-based sliding window over the last `size` call outcomes, with an age limit.
 *
 * Backed by a preallocated ring buffer and running sums: `record` and `counts` are O(1)
 * amortized (each entry is evicted at most once) and allocate nothing per call.
 * An outcome recorded at `at` keeps counting while `now - at <= maxAgeMs`.
 * Timestamps are expected to be non-decreasing (a single injected clock).
 */
export class OutcomeWindow {
  private readonly timestamps: Float64Array;
  private readonly flags: Uint8Array;
  /** Index of the oldest entry. */
  private head = 0;
  private length = 0;
  private failures = 0;
  private slowCalls = 0;

  /**
   * @param size maximum number of outcomes kept (integer ≥ 1)
   * @param maxAgeMs outcomes older than this stop counting (> 0; may be Infinity)
   */
  constructor(
    readonly size: number,
    readonly maxAgeMs: number,
  ) {
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(`OutcomeWindow size must be an integer >= 1, got ${size}`);
    }
    if (!(maxAgeMs > 0)) {
      throw new RangeError(`OutcomeWindow maxAgeMs must be > 0, got ${maxAgeMs}`);
    }
    this.timestamps = new Float64Array(size);
    this.flags = new Uint8Array(size);
  }

  /** Adds one outcome observed at time `at` (ms), evicting the oldest when full. */
  record(outcome: CallOutcome, at: number): void {
    this.evictOlderThan(at);
    if (this.length === this.size) this.dropOldest();
    const index = (this.head + this.length) % this.size;
    const flag = (outcome.failure ? FAILURE : 0) | (outcome.slow ? SLOW : 0);
    this.timestamps[index] = at;
    this.flags[index] = flag;
    this.length++;
    if (flag & FAILURE) this.failures++;
    if (flag & SLOW) this.slowCalls++;
  }

  /** Counts of the outcomes still inside the window at `now`. */
  counts(now: number): WindowCounts {
    this.evictOlderThan(now);
    return { calls: this.length, failures: this.failures, slowCalls: this.slowCalls };
  }

  /** Forgets every outcome. */
  clear(): void {
    this.head = 0;
    this.length = 0;
    this.failures = 0;
    this.slowCalls = 0;
  }

  private evictOlderThan(now: number): void {
    const cutoff = now - this.maxAgeMs;
    while (this.length > 0 && this.timestamps[this.head] < cutoff) this.dropOldest();
  }

  private dropOldest(): void {
    const flag = this.flags[this.head];
    if (flag & FAILURE) this.failures--;
    if (flag & SLOW) this.slowCalls--;
    this.head = (this.head + 1) % this.size;
    this.length--;
  }
}
