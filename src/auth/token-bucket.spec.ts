import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../common/clock';
import { SeededRandomSource } from '../common/random';
import { modelLimitsScript } from './limits-script';
import { openAiDuration, openAiRateLimitHeaders } from './openai-rate-headers';
import { bucketFigures, neverFits, requestBucket, reserveStep, settleStep, tokenBucket } from './token-bucket';

const MINUTE = 60_000;

describe('token bucket arithmetic (fake clock)', () => {
  it('holds exactly the limit when full, refuses the next token, and names when it would fit', () => {
    const clock = new FakeClock();
    const bucket = tokenBucket(1000, MINUTE);
    const first = reserveStep(undefined, clock.now(), bucket, 600);
    assert.equal(first.allowed, true);
    assert.deepEqual(bucketFigures(first.tat, clock.now(), bucket, true, 600), { limit: 1000, remaining: 400, resetMs: 36_000, retryAfterMs: 0 });
    const exact = reserveStep(first.tat, clock.now(), bucket, 400);
    assert.equal(exact.allowed, true, 'the last 400 tokens fit exactly');
    const over = reserveStep(exact.tat, clock.now(), bucket, 1);
    assert.equal(over.allowed, false);
    assert.equal(over.tat, exact.tat, 'a refusal costs nothing');
    const refused = bucketFigures(over.tat, clock.now(), bucket, false, 50);
    assert.equal(refused.remaining, 0);
    assert.equal(refused.resetMs, MINUTE);
    assert.equal(refused.retryAfterMs, 3000, '50 tokens come back in 50 × 60 ms');
    clock.advance(2999);
    assert.equal(reserveStep(exact.tat, clock.now(), bucket, 50).allowed, false);
    clock.advance(1);
    assert.equal(reserveStep(exact.tat, clock.now(), bucket, 50).allowed, true);
  });

  it('replenishes continuously: a quiet period gives back the whole limit and never more', () => {
    const clock = new FakeClock();
    const bucket = tokenBucket(600, MINUTE);
    let tat = reserveStep(undefined, clock.now(), bucket, 600).tat;
    clock.advance(10_000);
    assert.equal(bucketFigures(tat, clock.now(), bucket, true, 0).remaining, 100);
    clock.advance(10 * MINUTE);
    assert.deepEqual(bucketFigures(tat, clock.now(), bucket, true, 0), { limit: 600, remaining: 600, resetMs: 0, retryAfterMs: 0 });
    tat = reserveStep(tat, clock.now(), bucket, 600).tat;
    assert.equal(reserveStep(tat, clock.now(), bucket, 1).allowed, false, 'no more than one limit after a long pause');
  });

  it('settles: gives back the unused part (never beyond full) and charges use beyond the reservation as debt', () => {
    const clock = new FakeClock();
    const bucket = tokenBucket(1000, MINUTE);
    let tat = reserveStep(undefined, clock.now(), bucket, 900).tat;
    tat = settleStep(tat, clock.now(), bucket, 120 - 900);
    assert.equal(bucketFigures(tat, clock.now(), bucket, true, 0).remaining, 880, 'charged 120, what was used');
    assert.equal(settleStep(tat, clock.now(), bucket, -5000), clock.now(), 'a refund never fills beyond full');
    tat = reserveStep(tat, clock.now(), bucket, 880).tat;
    tat = settleStep(tat, clock.now(), bucket, 300);
    const owing = bucketFigures(tat, clock.now(), bucket, true, 0);
    assert.equal(owing.remaining, 0);
    assert.equal(owing.resetMs, 78_000, '1300 tokens charged: 1.3 minutes to full');
    clock.advance(17_999);
    assert.equal(reserveStep(tat, clock.now(), bucket, 1).allowed, false, 'the debt is paid first');
    clock.advance(61);
    assert.equal(reserveStep(tat, clock.now(), bucket, 1).allowed, true);
  });

  it('knows a request that could never fit, even when the limit does not divide the period', () => {
    for (const limit of [1, 7, 13, 999, 150_000]) {
      const bucket = tokenBucket(limit, MINUTE);
      assert.equal(neverFits(bucket, limit), false, `${limit} fits ${limit}`);
      assert.equal(neverFits(bucket, limit + 1), true, `${limit} never fits ${limit + 1}`);
      assert.equal(reserveStep(undefined, 1_700_000_000_000, bucket, limit).allowed, true, `a full bucket of ${limit} takes ${limit}`);
    }
  });

  it('never admits more than the limit plus what replenished, for any sequence of takes and settlements', () => {
    const random = new SeededRandomSource(42);
    const limit = 5000;
    const bucket = tokenBucket(limit, MINUTE);
    const clock = new FakeClock();
    const start = clock.now();
    const store = new Map<string, number>();
    let charged = 0;
    for (let i = 0; i < 2000; i++) {
      clock.advance(Math.floor(random.next() * 200));
      const cost = 1 + Math.floor(random.next() * 800);
      const used = Math.floor(random.next() * cost);
      const [refused] = modelLimitsScript(store, clock.now(), [{ key: 'k', bucket, cost }], []);
      if (refused !== 0) continue;
      modelLimitsScript(store, clock.now(), [], [{ key: 'k', interval: bucket.interval, delta: used - cost }]);
      charged += used;
      const replenished = ((clock.now() - start) * limit) / MINUTE;
      assert.ok(charged <= limit + replenished + 1e-6, `${charged} charged after ${clock.now() - start} ms`);
    }
    assert.ok(charged > limit, 'settlements let more through than the reservations alone would');
  });

  it('counts requests as the request limiter always has: whole-ms intervals, a burst of exactly the limit', () => {
    const bucket = requestBucket(7);
    assert.deepEqual(bucket, { limit: 7, interval: 8572, capacity: 60_004 });
    let tat: number | undefined;
    const allowed = Array.from({ length: 8 }, () => {
      const step = reserveStep(tat, 1_700_000_000_000, bucket, 1);
      if (step.allowed) tat = step.tat;
      return step.allowed;
    });
    assert.deepEqual(allowed, [true, true, true, true, true, true, true, false]);
  });
});

describe("OpenAI's rate-limit header formats", () => {
  it('writes durations as OpenAI does (Go durations at millisecond precision)', () => {
    const cases: [number, string][] = [
      [0, '0s'],
      [0.2, '1ms'],
      [20, '20ms'],
      [999, '999ms'],
      [1000, '1s'],
      [8640, '8.64s'],
      [17_280.4, '17.281s'],
      [60_000, '1m0s'],
      [90_500, '1m30.5s'],
      [360_000, '6m0s'],
      [7_200_000, '2h0m0s'],
      [86_399_999, '23h59m59.999s'],
      [-5, '0s'],
    ];
    for (const [ms, text] of cases) assert.equal(openAiDuration(ms), text, `${ms} ms`);
  });

  it('sends the three headers of each limit the key has, and only those', () => {
    const requests = { limit: 60, remaining: 59, resetMs: 1000, retryAfterMs: 0 };
    const tokens = { limit: 150_000, remaining: 149_984, resetMs: 6.4, retryAfterMs: 0 };
    assert.deepEqual(openAiRateLimitHeaders({ requests, tokens }), {
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-remaining-requests': '59',
      'x-ratelimit-reset-requests': '1s',
      'x-ratelimit-limit-tokens': '150000',
      'x-ratelimit-remaining-tokens': '149984',
      'x-ratelimit-reset-tokens': '7ms',
    });
    assert.deepEqual(Object.keys(openAiRateLimitHeaders({ tokens })), ['x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens']);
    assert.deepEqual(openAiRateLimitHeaders({}), {});
  });
});
