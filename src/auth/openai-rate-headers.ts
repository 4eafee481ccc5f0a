import type { BucketFigures } from './token-bucket';

/**
 * A duration as OpenAI's `x-ratelimit-reset-*` headers write it (Go's duration format at millisecond
 * precision): `0s`, `20ms`, `1s`, `8.64s`, `6m0s`, `1m30.5s`, `2h0m0s`. Fractions of a millisecond round up,
 * so a reader that waits that long finds the bucket as announced.
 */
export function openAiDuration(ms: number): string {
  const total = Math.max(0, Math.ceil(Number.isFinite(ms) ? ms - 1e-6 : 0));
  if (total === 0) return '0s';
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const millis = total % 60_000;
  const seconds = `${Math.floor(millis / 1000)}${millis % 1000 ? `.${String(millis % 1000).padStart(3, '0').replace(/0+$/, '')}` : ''}s`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}`;
  if (minutes > 0) return `${minutes}m${seconds}`;
  return seconds;
}

/**
 * OpenAI's rate-limit headers for a key with limits: `x-ratelimit-{limit,remaining,reset}-requests` for its
 * request bucket and `-tokens` for its token bucket, each only when the key has that limit.
 */
export function openAiRateLimitHeaders(figures: { requests?: BucketFigures; tokens?: BucketFigures }): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const kind of ['requests', 'tokens'] as const) {
    const bucket = figures[kind];
    if (!bucket) continue;
    headers[`x-ratelimit-limit-${kind}`] = String(bucket.limit);
    headers[`x-ratelimit-remaining-${kind}`] = String(Math.max(0, bucket.remaining));
    headers[`x-ratelimit-reset-${kind}`] = openAiDuration(bucket.resetMs);
  }
  return headers;
}
