import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../common/clock';
import { AbandonedTracker } from './abandoned-tracker';

function near(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) < 1e-9, `expected ${expected}, got ${actual}`);
}

function setup(maxAbandoned = 6, resetIntervalMs = 300_000) {
  const clock = new FakeClock();
  return { clock, tracker: new AbandonedTracker({ maxAbandoned, resetIntervalMs }, clock) };
}

describe('AbandonedTracker', () => {
  it('uses a quarter of the reset interval as half-life', () => {
    assert.equal(setup(6, 300_000).tracker.halfLifeMs, 75_000);
  });

  it('counts records and decays by half after one half-life', () => {
    const { clock, tracker } = setup();
    for (let i = 0; i < 4; i++) tracker.record();
    near(tracker.count(), 4);
    clock.advance(75_000);
    near(tracker.count(), 2);
    clock.advance(75_000);
    near(tracker.count(), 1);
    assert.equal(tracker.totalSinceReset(), 4, 'the reporting total does not decay');
  });

  it('adds new records on top of the decayed count', () => {
    const { clock, tracker } = setup();
    tracker.record();
    tracker.record();
    clock.advance(75_000);
    tracker.record();
    near(tracker.count(), 2);
    clock.advance(75_000);
    near(tracker.count(), 1);
  });

  it('reports capacity used as count / maxAbandoned, exceeding 1 when over', () => {
    const { tracker } = setup(4);
    tracker.record();
    near(tracker.capacityUsed(), 0.25);
    for (let i = 0; i < 5; i++) tracker.record();
    near(tracker.capacityUsed(), 1.5);
  });

  it('reset clears the count and the total', () => {
    const { tracker } = setup();
    for (let i = 0; i < 3; i++) tracker.record();
    tracker.reset();
    assert.equal(tracker.count(), 0);
    assert.equal(tracker.capacityUsed(), 0);
    assert.equal(tracker.totalSinceReset(), 0);
  });

  it('timeUntilReset counts down, stops at 0 and restarts on reset', () => {
    const { clock, tracker } = setup(6, 300_000);
    assert.equal(tracker.timeUntilResetMs(), 300_000);
    clock.advance(55_000);
    assert.equal(tracker.timeUntilResetMs(), 245_000);
    clock.advance(300_000);
    assert.equal(tracker.timeUntilResetMs(), 0);
    tracker.reset();
    assert.equal(tracker.timeUntilResetMs(), 300_000);
  });

  it('does not grow when the clock steps backwards', () => {
    const { clock, tracker } = setup();
    tracker.record();
    clock.advance(-10_000);
    near(tracker.count(), 1);
  });

  it('rejects nonsensical options', () => {
    const clock = new FakeClock();
    assert.throws(() => new AbandonedTracker({ maxAbandoned: 0, resetIntervalMs: 1000 }, clock), RangeError);
    assert.throws(() => new AbandonedTracker({ maxAbandoned: 1, resetIntervalMs: 0 }, clock), RangeError);
  });
});
