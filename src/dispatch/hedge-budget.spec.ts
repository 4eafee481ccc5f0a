import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../common/clock';
import { SeededRandomSource } from '../common/random';
import { HEDGE_WINDOW_MS, HedgeBudget, hedgeFits } from './hedge-budget';
import { FirstByteTimes } from './first-byte-times';

describe('HedgeBudget', () => {
  it('allows no hedge before it has calls, then one per 1/ratio calls', () => {
    const clock = new FakeClock(HEDGE_WINDOW_MS * 1000);
    const budget = new HedgeBudget(0.05, clock);
    assert.equal(budget.tryTake(), false);
    for (let i = 0; i < 19; i++) budget.recordCall();
    assert.equal(budget.tryTake(), false, '19 calls earn less than one hedge');
    budget.recordCall();
    assert.equal(budget.tryTake(), true);
    assert.equal(budget.tryTake(), false, 'the one hedge is spent');
  });

  it('never lets hedges pass the ratio of calls, whatever the order of calls and hedge wishes', () => {
    const clock = new FakeClock(HEDGE_WINDOW_MS * 1000);
    const random = new SeededRandomSource(7);
    const budget = new HedgeBudget(0.05, clock);
    let calls = 0;
    let hedges = 0;
    for (let step = 0; step < 5000; step++) {
      clock.advance(Math.floor(random.next() * 5));
      budget.recordCall();
      calls++;
      // Every third call wants a hedge, far more than the budget.
      if (random.next() < 0.33 && budget.tryTake()) hedges++;
    }
    assert.ok(hedges <= 0.05 * calls, `${hedges} hedges for ${calls} calls`);
    assert.ok(hedges >= 0.04 * calls, `the budget is used: ${hedges} hedges for ${calls} calls`);
  });

  it('forgets calls older than the window: a quiet spell earns no burst of hedges', () => {
    const clock = new FakeClock(HEDGE_WINDOW_MS * 1000);
    const budget = new HedgeBudget(0.5, clock);
    for (let i = 0; i < 100; i++) budget.recordCall();
    clock.advance(HEDGE_WINDOW_MS * 2);
    assert.equal(budget.tryTake(), false);
    budget.recordCall();
    budget.recordCall();
    assert.equal(budget.tryTake(), true);
  });

  it('weighs the previous bucket by how much of it is still in the window', () => {
    const counts = { calls: 0, hedges: 0, previousCalls: 40, previousHedges: 1 };
    assert.equal(hedgeFits(counts, 1, 0.05), true, '1 + 1 ≤ 0.05 × 40');
    assert.equal(hedgeFits(counts, 0.5, 0.05), false, '0.5 + 1 > 0.05 × 20');
  });
});

describe('FirstByteTimes', () => {
  it('gives the p95 of the recent first-byte times once it has 20, per model', () => {
    const times = new FirstByteTimes();
    for (let i = 1; i <= 19; i++) times.record('m', i * 10);
    assert.equal(times.p95('m'), undefined);
    times.record('m', 200);
    assert.equal(times.p95('m'), 190);
    assert.equal(times.p95('other'), undefined);
    for (let i = 0; i < 200; i++) times.record('m', 5);
    assert.equal(times.p95('m'), 5, 'old samples leave the ring');
  });
});
