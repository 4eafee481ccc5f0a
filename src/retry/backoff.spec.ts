import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { noJitterGenerator, IExponentialBackoffOptions } from 'cockatiel';
import { RandomSource, SeededRandomSource } from '../common/random';
import { backoffDelay, parseRetryAfter, planRetry } from './backoff';

class FixedRandom extends RandomSource {
  constructor(private readonly value: number) {
    super();
  }
  next(): number {
    return this.value;
  }
}

describe('backoffDelay', () => {
  it('stays within [0, min(max, base·2^n)) over 10,000 seeded draws per attempt', () => {
    const random = new SeededRandomSource(42);
    const base = 100;
    const max = 20_000;
    for (let attempt = 0; attempt <= 12; attempt++) {
      const cap = Math.min(max, base * 2 ** attempt);
      let highest = 0;
      for (let i = 0; i < 10_000; i++) {
        const d = backoffDelay(attempt, base, max, random);
        assert.ok(d >= 0 && d < cap, `attempt ${attempt}: ${d} outside [0, ${cap})`);
        highest = Math.max(highest, d);
      }
      assert.ok(highest > cap * 0.99, `attempt ${attempt}: draws do not span the range (${highest})`);
    }
  });

  it('caps at maxMs, even for huge attempt numbers', () => {
    const almostOne = new FixedRandom(0.999_999);
    assert.equal(backoffDelay(5, 100, 1_000, new FixedRandom(0.5)), 500);
    assert.ok(backoffDelay(50, 100, 1_000, almostOne) <= 1_000);
    assert.ok(backoffDelay(5_000, 100, 1_000, almostOne) > 999);
    assert.equal(backoffDelay(0, 100, 1_000, new FixedRandom(0.5)), 50);
  });

  it('has the same envelope as cockatiel’s exponential generators', () => {
    const options: IExponentialBackoffOptions<number> = {
      generator: noJitterGenerator,
      initialDelay: 128,
      maxDelay: 30_000,
      exponent: 2,
    };
    for (let attempt = 0; attempt < 20; attempt++) {
      const [cockatielCap] = noJitterGenerator(attempt, options);
      assert.equal(backoffDelay(attempt, 128, 30_000, new FixedRandom(1)), cockatielCap);
    }
  });

  it('is reproducible with the same seed', () => {
    const a = new SeededRandomSource(7);
    const b = new SeededRandomSource(7);
    for (let i = 0; i < 5; i++) assert.equal(backoffDelay(i, 50, 5_000, a), backoffDelay(i, 50, 5_000, b));
  });

  it('rejects negative or fractional attempts', () => {
    assert.throws(() => backoffDelay(-1, 100, 1_000, new FixedRandom(0.5)), RangeError);
    assert.throws(() => backoffDelay(1.5, 100, 1_000, new FixedRandom(0.5)), RangeError);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');

  it('reads delay-seconds', () => {
    assert.equal(parseRetryAfter({ 'retry-after': '5' }, now), 5_000);
    assert.equal(parseRetryAfter({ 'retry-after': ' 1.5 ' }, now), 1_500);
    assert.equal(parseRetryAfter({ 'retry-after': '0' }, now), 0);
  });

  it('reads retry-after-ms and prefers it over retry-after', () => {
    assert.equal(parseRetryAfter({ 'retry-after-ms': '250' }, now), 250);
    assert.equal(parseRetryAfter({ 'retry-after-ms': '250.5', 'retry-after': '9' }, now), 250.5);
    assert.equal(parseRetryAfter({ 'retry-after-ms': 'soon', 'retry-after': '9' }, now), 9_000);
  });

  it('reads an HTTP date relative to now, clamping past dates to 0', () => {
    assert.equal(parseRetryAfter({ 'retry-after': 'Wed, 21 Oct 2015 07:28:30 GMT' }, now), 30_000);
    assert.equal(parseRetryAfter({ 'retry-after': 'Wed, 21 Oct 2015 07:27:00 GMT' }, now), 0);
  });

  it('matches header names case-insensitively and takes the first of repeated values', () => {
    assert.equal(parseRetryAfter({ 'Retry-After': '2' }, now), 2_000);
    assert.equal(parseRetryAfter({ 'retry-after': ['3', '7'] }, now), 3_000);
  });

  it('returns undefined for garbage or absent headers', () => {
    for (const value of ['soon', '', '-5', '12abc', '1e3', 'NaN', 'Infinity', '9'.repeat(400)]) {
      assert.equal(parseRetryAfter({ 'retry-after': value }, now), undefined, JSON.stringify(value));
    }
    assert.equal(parseRetryAfter({}, now), undefined);
    assert.equal(parseRetryAfter({ 'retry-after': undefined }, now), undefined);
    assert.equal(parseRetryAfter({ 'retry-after-ms': '-1' }, now), undefined);
  });
});

describe('planRetry', () => {
  const common = { attempt: 2, baseMs: 100, maxMs: 10_000, random: new FixedRandom(0.5) };

  it('waits for a hint that fits before the deadline', () => {
    assert.deepEqual(planRetry({ ...common, hintMs: 1_500, remainingMs: 5_000 }), {
      kind: 'wait',
      delayMs: 1_500,
      fromHint: true,
    });
    assert.deepEqual(planRetry({ ...common, hintMs: 0, remainingMs: 5_000 }), { kind: 'wait', delayMs: 0, fromHint: true });
  });

  it('gives up when Retry-After is longer than the deadline, instead of backing off less', () => {
    assert.deepEqual(planRetry({ ...common, hintMs: 30_000, remainingMs: 5_000 }), {
      kind: 'give_up',
      reason: 'hint_exceeds_deadline',
    });
    assert.deepEqual(planRetry({ ...common, hintMs: 5_000, remainingMs: 5_000 }), {
      kind: 'give_up',
      reason: 'hint_exceeds_deadline',
    });
  });

  it('uses jittered backoff without a hint', () => {
    // 0.5 × min(10_000, 100 × 2²) = 200
    assert.deepEqual(planRetry({ ...common, remainingMs: 5_000 }), { kind: 'wait', delayMs: 200, fromHint: false });
  });

  it('gives up on the deadline when the backoff does not fit', () => {
    assert.deepEqual(planRetry({ ...common, remainingMs: 200 }), { kind: 'give_up', reason: 'deadline' });
    assert.deepEqual(planRetry({ ...common, remainingMs: 201 }), { kind: 'wait', delayMs: 200, fromHint: false });
  });

  it('gives up on the deadline when no time is left, hint or not', () => {
    assert.deepEqual(planRetry({ ...common, hintMs: 0, remainingMs: 0 }), { kind: 'give_up', reason: 'deadline' });
    assert.deepEqual(planRetry({ ...common, remainingMs: -5 }), { kind: 'give_up', reason: 'deadline' });
  });
});
