import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandomSource } from '../common/random';
import { rejectionProbability, shouldShed } from './graduated-rejection';
import { PRIORITIES, Priority } from '../common/priority';

function near(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) < 1e-9, `expected ${expected}, got ${actual}`);
}

describe('rejectionProbability', () => {
  it('low rises linearly from the threshold to 1 at full', () => {
    near(rejectionProbability(0.8, 0.8, 'low'), 0);
    near(rejectionProbability(0.9, 0.8, 'low'), 0.5);
    near(rejectionProbability(1.0, 0.8, 'low'), 1);
  });

  it('normal starts halfway between the threshold and 1', () => {
    near(rejectionProbability(0.85, 0.8, 'normal'), 0);
    near(rejectionProbability(0.9, 0.8, 'normal'), 0);
    near(rejectionProbability(0.95, 0.8, 'normal'), 0.5);
    near(rejectionProbability(1.0, 0.8, 'normal'), 1);
  });

  it('high is refused only at full capacity', () => {
    assert.equal(rejectionProbability(0.99, 0.8, 'high'), 0);
    assert.equal(rejectionProbability(1.0, 0.8, 'high'), 1);
  });

  it('matches the seed for low: 70% → 0, 85% → 0.5, 100% → 1', () => {
    near(rejectionProbability(0.7, 0.7, 'low'), 0);
    near(rejectionProbability(0.85, 0.7, 'low'), 0.5);
    near(rejectionProbability(1, 0.7, 'low'), 1);
  });

  it('refuses everyone beyond full capacity', () => {
    for (const p of PRIORITIES) assert.equal(rejectionProbability(1.7, 0.8, p), 1);
  });

  it('with threshold >= 1 only the full-capacity rule applies', () => {
    for (const p of PRIORITIES) {
      assert.equal(rejectionProbability(0.999, 1, p), 0);
      assert.equal(rejectionProbability(1, 1, p), 1);
    }
  });

  it('treats NaN and negative fill as empty', () => {
    assert.equal(rejectionProbability(Number.NaN, 0.5, 'low'), 0);
    assert.equal(rejectionProbability(-0.5, 0.5, 'low'), 0);
  });
});

describe('shouldShed', () => {
  function refusedShare(priority: Priority, fill: number, threshold: number): number {
    const random = new SeededRandomSource(42);
    let refused = 0;
    const draws = 10_000;
    for (let i = 0; i < draws; i++) if (shouldShed(fill, threshold, priority, random)) refused++;
    return refused / draws;
  }

  it('refuses low about half the time at 85% fill with threshold 0.7, high never', () => {
    const low = refusedShare('low', 0.85, 0.7);
    assert.ok(low >= 0.45 && low <= 0.55, `low refused ${low}`);
    assert.equal(refusedShare('high', 0.85, 0.7), 0);
  });

  it('refuses nobody below the threshold', () => {
    for (const p of PRIORITIES) assert.equal(refusedShare(p, 0.69, 0.7), 0);
  });

  it('refuses everybody at full capacity without consuming randomness', () => {
    let draws = 0;
    const random = { next: () => (draws++, 0.99) };
    for (const p of PRIORITIES) assert.equal(shouldShed(1, 0.7, p, random), true);
    assert.equal(draws, 0);
  });
});
