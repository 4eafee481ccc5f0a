import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRandomSource } from '../common/random';
import { emissionIntervalMs, gcraDecision, gcraStep, GcraPolicy, rateLimitHeaders } from './gcra';

const MINUTE = 60_000;
const T0 = 1_700_000_000_000;

/** Runs requests at the given times through the step, as the Redis script would, keeping the stored TAT. */
function run(times: number[], policy: GcraPolicy): { at: number; allowed: boolean; tat: number }[] {
  let stored: number | undefined;
  return times.map((at) => {
    const step = gcraStep(stored, at, policy);
    if (step.allowed) stored = step.tat;
    return { at, ...step };
  });
}

describe('GCRA rate limit', () => {
  const policy = { limit: 5, periodMs: MINUTE };

  it('allows a burst of exactly `limit`, then refuses', () => {
    const results = run(Array(7).fill(T0), policy);
    assert.deepEqual(results.map((r) => r.allowed), [true, true, true, true, true, false, false]);
  });

  it('gives one request back every period/limit, and the whole allowance after a quiet period', () => {
    const interval = emissionIntervalMs(policy);
    assert.equal(interval, 12_000);
    const times = [...Array(5).fill(T0), T0 + interval - 1, T0 + interval, T0 + interval + 1, T0 + interval + MINUTE];
    const allowed = run(times, policy).map((r) => r.allowed);
    assert.deepEqual(allowed, [true, true, true, true, true, false, true, false, true]);
    const afterQuiet = run([...Array(5).fill(T0), ...Array(6).fill(T0 + 2 * MINUTE)], policy).map((r) => r.allowed);
    assert.deepEqual(afterQuiet.slice(5), [true, true, true, true, true, false]);
  });

  it('does not let refused requests push the key further back', () => {
    const hammered = run([...Array(5).fill(T0), ...Array(50).fill(T0 + 1), T0 + 12_000], policy);
    assert.equal(hammered.at(-1)!.allowed, true);
  });

  it('never passes more than the burst plus the sustained rate in any window, for limits that do not divide the period', () => {
    for (const limit of [1, 3, 7, 13, 60, 1000]) {
      const policy = { limit, periodMs: MINUTE };
      const interval = emissionIntervalMs(policy);
      const random = new SeededRandomSource(limit);
      const times: number[] = [];
      let at = T0;
      for (let i = 0; i < 3000; i++) times.push((at += Math.floor((random.next() * (3 * MINUTE)) / limit)));
      const passed = run(times, policy).filter((r) => r.allowed).map((r) => r.at);
      for (const windowMs of [MINUTE, 10 * MINUTE]) {
        for (let i = 0, j = 0; i < passed.length; i++) {
          while (passed[i] - passed[j] >= windowMs) j++;
          const bound = limit + Math.floor((passed[i] - passed[j]) / interval);
          assert.ok(i - j + 1 <= bound, `limit ${limit}: ${i - j + 1} requests within ${passed[i] - passed[j]} ms`);
        }
      }
      assert.ok(passed.length > limit, `limit ${limit}: some requests pass after the first burst`);
    }
  });

  it('reports remaining, reset and retry-after for the headers', () => {
    const first = gcraStep(undefined, T0, policy);
    const allowed = gcraDecision(first.allowed, first.tat, T0, policy);
    assert.deepEqual(allowed, { allowed: true, limit: 5, remaining: 4, resetMs: 12_000, retryAfterMs: 0 });
    assert.deepEqual(rateLimitHeaders(allowed), { 'x-ratelimit-limit': '5', 'x-ratelimit-remaining': '4', 'x-ratelimit-reset': '12' });

    const results = run(Array(6).fill(T0), policy);
    const refused = gcraDecision(false, results[5].tat, T0 + 1000, policy);
    assert.equal(refused.remaining, 0);
    assert.equal(refused.retryAfterMs, 11_000);
    assert.equal(refused.resetMs, 59_000);
    const fifth = gcraDecision(true, results[4].tat, T0, policy);
    assert.equal(fifth.remaining, 0);
  });
});
