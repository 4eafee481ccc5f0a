/**
 * The per-key rate limit as a GCRA (generic cell rate algorithm): one number per key, the
 * "theoretical arrival time" (TAT), held in Redis so that every instance shares it. A key may send
 * `limit` requests at once, then one every `periodMs / limit`; a key that pauses for `periodMs` has
 * its whole allowance back. Unlike a fixed window, there is no boundary at which twice the limit fits.
 * (token-bucket.ts holds the same arithmetic for any cost; the limits script runs it in Redis.)
 */
export interface GcraPolicy {
  /** Requests allowed per period (RATE_LIMIT_RPM). */
  limit: number;
  periodMs: number;
}

/** What one request's check decided, with what the `X-RateLimit-*` headers report. */
export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  /** Requests the key may still send right now. */
  remaining: number;
  /** Milliseconds until the key's whole allowance is back. */
  resetMs: number;
  /** Milliseconds until the next request would be allowed; 0 when this one was. */
  retryAfterMs: number;
}

/** Whole milliseconds between two requests at the sustained rate (rounded up, so never above the limit). */
export function emissionIntervalMs(policy: GcraPolicy): number {
  return Math.max(1, Math.ceil(policy.periodMs / policy.limit));
}

/** One request's GCRA step over a stored TAT, as the limits script (limits-script.ts) takes it for requests. */
export function gcraStep(storedTat: number | undefined, now: number, policy: GcraPolicy): { allowed: boolean; tat: number } {
  const interval = emissionIntervalMs(policy);
  const tat = Math.max(storedTat ?? 0, now);
  const nextTat = tat + interval;
  if (nextTat - now > interval * policy.limit) return { allowed: false, tat };
  return { allowed: true, tat: nextTat };
}

/** Turns the TAT after a step into the decision and the figures of the `X-RateLimit-*` headers. */
export function gcraDecision(allowed: boolean, tat: number, now: number, policy: GcraPolicy): RateLimitDecision {
  const interval = emissionIntervalMs(policy);
  const capacity = interval * policy.limit;
  const used = Math.max(0, tat - now);
  return {
    allowed,
    limit: policy.limit,
    remaining: allowed ? Math.max(0, Math.floor((capacity - used) / interval)) : 0,
    resetMs: used,
    retryAfterMs: allowed ? 0 : Math.max(1, tat + interval - capacity - now),
  };
}

/** The `X-RateLimit-*` headers of a decision (reset in whole seconds from now, as the IETF draft does). */
export function rateLimitHeaders(decision: RateLimitDecision): Record<string, string> {
  return {
    'x-ratelimit-limit': String(decision.limit),
    'x-ratelimit-remaining': String(decision.remaining),
    'x-ratelimit-reset': String(Math.ceil(decision.resetMs / 1000)),
  };
}
