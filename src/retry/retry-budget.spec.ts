import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../common/clock';
import { RetryBudget, RetryBudgetOptions } from './retry-budget';

/** A clock on a whole-second boundary, so slice expiry happens at exact, known instants. */
function setup(options: RetryBudgetOptions) {
  const clock = new FakeClock(1_700_000_000_000);
  return { clock, budget: new RetryBudget(options, clock) };
}

function drain(budget: RetryBudget): number {
  let n = 0;
  while (budget.tryWithdraw()) {
    n++;
    assert.ok(n <= 1_000_000, 'budget never runs out');
  }
  return n;
}

describe('RetryBudget', () => {
  it('is exhausted after ratio × requests + floor retries', () => {
    const { budget } = setup({ ratio: 0.2, minRetriesPerSecond: 1, ttlMs: 10_000 });
    for (let i = 0; i < 100; i++) budget.recordRequest();
    assert.equal(budget.available(), 30);
    assert.equal(drain(budget), 30);
    assert.equal(budget.tryWithdraw(), false);
    assert.equal(budget.available(), 0);
  });

  it('adds fractional deposits exactly (10 × 0.1 = one retry)', () => {
    const { budget } = setup({ ratio: 0.1, minRetriesPerSecond: 0, ttlMs: 10_000 });
    for (let i = 0; i < 9; i++) budget.recordRequest();
    assert.equal(budget.tryWithdraw(), false);
    budget.recordRequest();
    assert.equal(budget.tryWithdraw(), true);
    assert.equal(budget.tryWithdraw(), false);
  });

  it('gives withdrawn tokens back once ttl has passed', () => {
    const { clock, budget } = setup({ ratio: 0, minRetriesPerSecond: 0.5, ttlMs: 10_000 });
    assert.equal(drain(budget), 5);
    clock.advance(9_999);
    assert.equal(budget.tryWithdraw(), false);
    clock.advance(1);
    assert.equal(budget.available(), 5);
    assert.equal(drain(budget), 5);
  });

  it('expires deposits after ttl, slice by slice', () => {
    const { clock, budget } = setup({ ratio: 1, minRetriesPerSecond: 0, ttlMs: 3_000 });
    for (let i = 0; i < 3; i++) budget.recordRequest();
    clock.advance(1_000);
    for (let i = 0; i < 2; i++) budget.recordRequest();
    assert.equal(budget.available(), 5);
    clock.advance(2_000);
    assert.equal(budget.available(), 2);
    clock.advance(1_000);
    assert.equal(budget.available(), 0);
    assert.equal(budget.tryWithdraw(), false);
  });

  it('keeps counting recent withdrawals after the deposits that paid for them expired', () => {
    const { clock, budget } = setup({ ratio: 1, minRetriesPerSecond: 1, ttlMs: 3_000 });
    budget.recordRequest();
    budget.recordRequest();
    assert.equal(budget.available(), 5);
    clock.advance(2_000);
    assert.equal(drain(budget), 5);
    clock.advance(1_000); // deposits gone, the 5 withdrawals still count against the floor of 3
    assert.equal(budget.available(), 0);
    assert.equal(budget.tryWithdraw(), false);
    clock.advance(2_000);
    assert.equal(budget.available(), 3);
  });

  it('lets a quiet service retry thanks to the floor', () => {
    const { budget } = setup({ ratio: 0.2, minRetriesPerSecond: 2, ttlMs: 5_000 });
    assert.equal(drain(budget), 10);
  });

  it('forgets everything after a long idle gap and survives a clock stepping back', () => {
    const { clock, budget } = setup({ ratio: 1, minRetriesPerSecond: 0, ttlMs: 5_000 });
    budget.recordRequest();
    clock.advance(3_600_000);
    assert.equal(budget.available(), 0);
    budget.recordRequest();
    clock.advance(-10_000);
    budget.recordRequest();
    assert.equal(budget.available(), 2);
  });

  it('rejects invalid options', () => {
    const clock = new FakeClock();
    assert.throws(() => new RetryBudget({ ratio: -1, minRetriesPerSecond: 0, ttlMs: 1_000 }, clock), RangeError);
    assert.throws(() => new RetryBudget({ ratio: 0.1, minRetriesPerSecond: 0, ttlMs: 0 }, clock), RangeError);
  });
});
