import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { estimateWaitMs, retryAfterMs, ServiceTimeEstimator } from './wait-estimator';

describe('ServiceTimeEstimator', () => {
  it('reports the initial value until the first sample, which then replaces it', () => {
    const estimator = new ServiceTimeEstimator({ initialMs: 1000 });
    assert.equal(estimator.averageMs(), 1000);
    estimator.record(400);
    assert.equal(estimator.averageMs(), 400);
  });

  it('applies alpha 0.2 to later samples', () => {
    const estimator = new ServiceTimeEstimator();
    estimator.record(1000);
    estimator.record(2000);
    assert.ok(Math.abs(estimator.averageMs() - 1200) < 1e-9, `got ${estimator.averageMs()}`);
  });

  it('converges to a steady service time', () => {
    const estimator = new ServiceTimeEstimator({ initialMs: 1000 });
    estimator.record(100);
    for (let i = 0; i < 50; i++) estimator.record(3000);
    assert.ok(Math.abs(estimator.averageMs() - 3000) < 1, `got ${estimator.averageMs()}`);
  });

  it('ignores negative and non-finite samples', () => {
    const estimator = new ServiceTimeEstimator({ initialMs: 500 });
    estimator.record(-1);
    estimator.record(Number.NaN);
    estimator.record(Number.POSITIVE_INFINITY);
    assert.equal(estimator.averageMs(), 500);
    assert.equal(estimator.sampleCount(), 0);
  });

  it('rejects an alpha outside (0,1]', () => {
    assert.throws(() => new ServiceTimeEstimator({ alpha: 0 }), RangeError);
    assert.throws(() => new ServiceTimeEstimator({ alpha: 1.5 }), RangeError);
  });
});

describe('estimateWaitMs', () => {
  const load = { maxConcurrent: 2, active: 2, ahead: 0, aheadMs: 0, runningRemainingMs: [] as number[], averageMs: 1000 };

  it('is nothing while a slot is free that nobody ahead will take', () => {
    assert.equal(estimateWaitMs({ ...load, active: 1 }), 0);
    assert.equal(estimateWaitMs({ ...load, active: 0, ahead: 1, aheadMs: 5000 }), 0);
  });

  it('with every slot busy and nobody waiting, waits for the first running request to end', () => {
    assert.equal(estimateWaitMs({ ...load, runningRemainingMs: [1800, 300] }), 300);
    // Running elsewhere (ends unknown here): half a service time each.
    assert.equal(estimateWaitMs(load), 500);
  });

  it('prices the requests ahead by their own size, not by a count', () => {
    const small = estimateWaitMs({ ...load, ahead: 4, aheadMs: 4 * 100, runningRemainingMs: [100, 100] });
    const large = estimateWaitMs({ ...load, ahead: 4, aheadMs: 4 * 2000, runningRemainingMs: [100, 100] });
    assert.equal(small, 300);
    assert.equal(large, 4100);
  });

  it('serves the requests ahead on the slots as they free, one after the other', () => {
    // Both short requests ahead run on the slot that frees first, at 900 and 910: the new one starts at 920.
    assert.equal(estimateWaitMs({ ...load, ahead: 2, aheadMs: 20, runningRemainingMs: [900, 1000] }), 920);
    assert.equal(estimateWaitMs({ ...load, maxConcurrent: 4, active: 4, ahead: 4, aheadMs: 40, runningRemainingMs: [900, 950, 1000, 1000] }), 940);
    // One free slot, three ahead of 1 s each: they start at 0, 500 (the unknown running one) and 1000.
    assert.equal(estimateWaitMs({ ...load, active: 1, ahead: 3, aheadMs: 3000 }), 1500);
  });
});

describe('retryAfterMs', () => {
  it('is whole seconds, at least one', () => {
    assert.equal(retryAfterMs(0, 3), 1000);
    assert.equal(retryAfterMs(10, 3), 1000);
    assert.equal(retryAfterMs(Number.NaN, 3), 1000);
  });

  it('is the time the work takes to drain through every slot, rounded up', () => {
    assert.equal(retryAfterMs(15_000, 3), 5000);
    assert.equal(retryAfterMs(7200, 3), 3000);
    assert.equal(retryAfterMs(7200, 0), 8000);
  });
});
