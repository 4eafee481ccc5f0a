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

/** The queue as a new request finds it: what the wait estimate and its Retry-After are made from. */
export interface QueueLoad {
  maxConcurrent: number;
  /** Slots in use on every instance. */
  active: number;
  /** Requests waiting ahead of the new one. */
  ahead: number;
  /** Their expected service time in total, each priced by its own size (unpriced ones at the average). */
  aheadMs: number;
  /** Expected time until each running request ends, for those this instance can tell. */
  runningRemainingMs: readonly number[];
  /** The average service time: the price of a running request of unknown end. */
  averageMs: number;
}

/**
 * Estimated queue wait of a new request: the time its turn comes if the slots serve, in order, what runs
 * now and then the requests waiting ahead of it (each at their mean price, so that their sizes count),
 * as soon as each slot frees. A free slot nobody ahead will take means no wait; a running request of
 * unknown end frees its slot in half a service time, the mean of what is left of it.
 */
export function estimateWaitMs(load: QueueLoad): number {
  const slots = Math.max(1, Math.floor(load.maxConcurrent));
  const free = Math.max(0, slots - load.active);
  if (free > load.ahead) return 0;
  // When each slot frees: the free ones now, the running ones as far as known, the rest at half a service time.
  const known = load.runningRemainingMs.map((ms) => Math.max(0, ms)).sort((a, b) => a - b);
  const freeAt: number[] = [];
  for (let i = 0; i < slots; i++) freeAt.push(i < free ? 0 : (known[i - free] ?? 0.5 * load.averageMs));
  const first = Math.min(...freeAt);
  const meanMs = load.ahead > 0 ? Math.max(0, load.aheadMs) / load.ahead : 0;
  if (load.ahead === 0 || meanMs === 0) return first;
  // Slot i starts requests at freeAt[i] + q * meanMs; the new request starts at the (ahead + 1)-th of
  // those times, found by bisection on how many start by a time t.
  const startedBy = (t: number) => freeAt.reduce((n, at) => (at <= t ? n + Math.floor((t - at) / meanMs) + 1 : n), 0);
  let lo = first;
  let hi = Math.max(...freeAt) + (load.ahead + 1) * meanMs;
  while (hi - lo > 0.5) {
    const mid = (lo + hi) / 2;
    if (startedBy(mid) >= load.ahead + 1) hi = mid;
    else lo = mid;
  }
  // The start time itself: the latest slot time at or before the bound found.
  return freeAt.reduce((best, at) => (at <= hi ? Math.max(best, at + Math.floor((hi - at) / meanMs) * meanMs) : best), first);
}

/**
 * A `Retry-After`, in ms of whole seconds (>= 1 s): the time `workMs` of queued work takes to drain
 * through `concurrency` slots. The one formula behind every refusal that asks the caller to come back.
 */
export function retryAfterMs(workMs: number, concurrency: number): number {
  const slots = concurrency >= 1 ? Math.floor(concurrency) : 1;
  const ms = workMs > 0 && Number.isFinite(workMs) ? workMs / slots : 0;
  return Math.max(1, Math.ceil(ms / 1000)) * 1000;
}
