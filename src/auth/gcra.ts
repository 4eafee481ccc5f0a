/**
 * The per-key rate limit as a GCRA (generic cell rate algorithm): one number per key, the
 * "theoretical arrival time" (TAT), held in Redis so that every instance shares it. A key may send
 * `limit` requests at once, then one every `periodMs / limit`; a key that pauses for `periodMs` has
 * its whole allowance back. Unlike a fixed window, there is no boundary at which twice the limit fits.
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

/**
 * One atomic GCRA step in Redis. KEYS[1] = the key's TAT; ARGV = now (ms), interval (ms), capacity
 * (interval × limit, ms). Stores the new TAT only when the request is allowed, so refused requests do
 * not push the key further back. Returns {allowed (1|0), TAT after this step}.
 * Times are integers well below 2^53, so Lua's doubles and Redis's string conversion keep them exact.
 */
export const GCRA_SCRIPT = `
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
if next_tat - now > capacity then
  return {0, tat}
end
redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now)
return {1, next_tat}
`;

/** The same step as {@link GCRA_SCRIPT}, over a stored TAT; used by tests and to read the script's answer. */
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
