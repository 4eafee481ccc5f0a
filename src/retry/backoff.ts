import { RandomSource } from '../common/random';

/**
 * Full-jitter exponential backoff ("Exponential Backoff and Jitter", AWS Architecture Blog):
 * a uniform draw in [0, min(maxMs, baseMs × 2^attempt)).
 *
 * Same envelope as cockatiel's `fullJitterGenerator`, written here because cockatiel's
 * generators call Math.random() directly and cannot take an injected RandomSource.
 *
 * @param attempt 0 for the first retry
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: RandomSource): number {
  if (!Number.isInteger(attempt) || attempt < 0) {
    throw new RangeError(`attempt must be an integer >= 0, got ${attempt}`);
  }
  if (!(baseMs > 0) || !(maxMs > 0)) return 0;
  // 2 ** attempt overflows to Infinity for huge attempts; min() then yields maxMs.
  return random.next() * Math.min(maxMs, baseMs * 2 ** attempt);
}

type HeaderBag = Record<string, string | string[] | undefined>;

const DECIMAL = /^\s*\d+(?:\.\d+)?\s*$/;

/**
 * Parses an upstream's retry hint: `retry-after-ms` (milliseconds, as sent by OpenAI and Azure)
 * is preferred, else `retry-after` as delay-seconds or an HTTP date (a past date gives 0).
 * Header names match case-insensitively; for repeated headers the first value is used.
 * @returns the wait in ms, or undefined when absent or unparsable
 */
export function parseRetryAfter(headers: HeaderBag, now: number): number | undefined {
  const ms = header(headers, 'retry-after-ms');
  if (ms !== undefined && DECIMAL.test(ms)) {
    const value = Number(ms);
    if (Number.isFinite(value)) return value;
  }
  const after = header(headers, 'retry-after');
  if (after === undefined) return undefined;
  if (DECIMAL.test(after)) {
    const value = Number(after) * 1000;
    return Number.isFinite(value) ? value : undefined;
  }
  // Date.parse accepts bare numbers like "-5" as years; an HTTP date always names a day or month.
  if (!/[a-z]/i.test(after)) return undefined;
  const at = Date.parse(after);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function header(headers: HeaderBag, name: string): string | undefined {
  let value = headers[name];
  if (value === undefined) {
    for (const key of Object.keys(headers)) {
      if (key.toLowerCase() === name) {
        value = headers[key];
        break;
      }
    }
  }
  return Array.isArray(value) ? value[0] : value;
}

/** Input of {@link planRetry}. */
export interface RetryPlanInput {
  /** 0 for the first retry. */
  attempt: number;
  /** Upstream hint from {@link parseRetryAfter}, if any. */
  hintMs?: number;
  /** Time left before the request's deadline. */
  remainingMs: number;
  baseMs: number;
  maxMs: number;
  random: RandomSource;
}

/** Outcome of {@link planRetry}. */
export type RetryPlan =
  | { kind: 'wait'; delayMs: number; fromHint: boolean }
  | { kind: 'give_up'; reason: 'hint_exceeds_deadline' | 'deadline' };

/**
 * Decides the wait before the next attempt: the upstream hint when present and shorter than
 * the remaining time (a hint is never overridden by backoff, it would just be rejected again),
 * else jittered backoff; gives up when the chosen wait does not fit before the deadline.
 */
export function planRetry(input: RetryPlanInput): RetryPlan {
  const { attempt, hintMs, remainingMs, baseMs, maxMs, random } = input;
  if (!(remainingMs > 0)) return { kind: 'give_up', reason: 'deadline' };
  if (hintMs !== undefined && !Number.isNaN(hintMs)) {
    const delayMs = Math.max(0, hintMs);
    return delayMs < remainingMs
      ? { kind: 'wait', delayMs, fromHint: true }
      : { kind: 'give_up', reason: 'hint_exceeds_deadline' };
  }
  const delayMs = backoffDelay(attempt, baseMs, maxMs, random);
  return delayMs < remainingMs ? { kind: 'wait', delayMs, fromHint: false } : { kind: 'give_up', reason: 'deadline' };
}
