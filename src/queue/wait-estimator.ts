/** Settings of a {@link ServiceTimeEstimator}. */
export interface ServiceTimeEstimatorOptions {
  /** Average reported before the first sample, in ms. Default 1000. */
  initialMs?: number;
  /** EWMA weight of each new sample, in (0,1]. Default 0.2. */
  alpha?: number;
}

/**
 * Exponentially weighted moving average of upstream service time, used to predict how long a
 * request will wait in the queue.
 */
export class ServiceTimeEstimator {
  private readonly alpha: number;
  private average: number;
  private samples = 0;

  /** @throws RangeError when `alpha` is outside (0,1] or `initialMs` is negative or not finite. */
  constructor(options: ServiceTimeEstimatorOptions = {}) {
    const alpha = options.alpha ?? 0.2;
    const initialMs = options.initialMs ?? 1000;
    if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`alpha must be in (0,1], got ${alpha}`);
    if (!(initialMs >= 0) || !Number.isFinite(initialMs)) {
      throw new RangeError(`initialMs must be a non-negative number, got ${initialMs}`);
    }
    this.alpha = alpha;
    this.average = initialMs;
  }

  /**
   * Adds one observed service time. The first sample replaces the initial guess outright, so a wrong
   * default does not bias the average for the next dozen requests. Negative or non-finite samples are ignored.
   */
  record(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) return;
    this.average = this.samples === 0 ? ms : this.alpha * ms + (1 - this.alpha) * this.average;
    this.samples += 1;
  }

  /** Current average service time in ms (the initial value until the first sample). */
  averageMs(): number {
    return this.average;
  }

  /** Number of samples recorded so far. */
  sampleCount(): number {
    return this.samples;
  }

}

/**
 * Whole seconds (>= 1) to drain `waiting` requests through `concurrency` slots at `avgMs` each;
 * the value for a `Retry-After` header, which must be a positive integer.
 */
export function drainTimeSeconds(waiting: number, concurrency: number, avgMs: number): number {
  const ms = rounds(waiting, concurrency) * (avgMs > 0 && Number.isFinite(avgMs) ? avgMs : 0);
  return Math.max(1, Math.ceil(ms / 1000));
}

function rounds(waiting: number, concurrency: number): number {
  if (!(waiting > 0)) return 0;
  const slots = concurrency >= 1 ? Math.floor(concurrency) : 1;
  return Math.ceil(waiting / slots);
}
