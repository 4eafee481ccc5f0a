/**
 * The arithmetic of Bulwark's limits: a continuously replenishing bucket kept as one number per key, the
 * GCRA "theoretical arrival time" (TAT, epoch ms). Each unit (a request, a token) costs `interval` ms; a
 * bucket holds `capacity` ms of them (the whole limit); a key that pauses for the period has its whole
 * allowance back. This is OpenAI's semantics for requests and tokens per minute: no window boundary at
 * which twice the limit fits. Redis runs the same steps in one script (limits-script.ts); these mirror it
 * for tests and turn its answer into figures.
 */
export interface Bucket {
  /** Units allowed per period (the header's `limit`). */
  limit: number;
  /** Milliseconds one unit costs. */
  interval: number;
  /** Milliseconds of units the bucket holds when full. */
  capacity: number;
}

/** Float slack of the comparisons (ms): far below one unit's cost, above the rounding of stored times. */
export const EPSILON_MS = 0.001;

/** Requests per minute, as the request limiter has always counted them: whole-ms intervals, never above the limit. */
export function requestBucket(perMinute: number): Bucket {
  const interval = Math.max(1, Math.ceil(60_000 / perMinute));
  return { limit: perMinute, interval, capacity: interval * perMinute };
}

/** Tokens per period (a minute or a day): exactly `limit` tokens a period. */
export function tokenBucket(limit: number, periodMs: number): Bucket {
  return { limit, interval: periodMs / limit, capacity: periodMs };
}

/** True when `cost` units could never fit, even in a full bucket. */
export function neverFits(bucket: Bucket, cost: number): boolean {
  return cost * bucket.interval > bucket.capacity + EPSILON_MS;
}

/** Takes `cost` units when they fit (returns the new TAT), else leaves the bucket as it is. */
export function reserveStep(storedTat: number | undefined, now: number, bucket: Bucket, cost: number): { allowed: boolean; tat: number } {
  const tat = Math.max(storedTat ?? 0, now);
  const next = tat + cost * bucket.interval;
  if (next - now > bucket.capacity + EPSILON_MS) return { allowed: false, tat };
  return { allowed: true, tat: next };
}

/**
 * Corrects a bucket by `delta` units once a request's real use is known: negative gives back what was
 * reserved and not used (never beyond a full bucket), positive charges what was used beyond it (the bucket
 * may then owe, and later requests wait until it has paid).
 */
export function settleStep(storedTat: number | undefined, now: number, bucket: Pick<Bucket, 'interval'>, delta: number): number {
  return Math.max(now, Math.max(storedTat ?? 0, now) + delta * bucket.interval);
}

/** What a bucket says after a step, as OpenAI's `x-ratelimit-*` headers and a 429's Retry-After report it. */
export interface BucketFigures {
  limit: number;
  /** Whole units that would fit right now. */
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
  /** Milliseconds until `cost` more units would fit; 0 when they were taken. */
  retryAfterMs: number;
}

/** The figures of a bucket whose TAT is `tat` after a step that took (`allowed`) or refused `cost` units. */
export function bucketFigures(tat: number, now: number, bucket: Bucket, allowed: boolean, cost: number): BucketFigures {
  const used = Math.max(0, tat - now);
  const free = bucket.capacity - used;
  return {
    limit: bucket.limit,
    remaining: free <= 0 ? 0 : Math.floor(free / bucket.interval + 1e-6),
    resetMs: used,
    retryAfterMs: allowed ? 0 : Math.max(1, tat + cost * bucket.interval - bucket.capacity - now),
  };
}
