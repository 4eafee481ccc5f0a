import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { drainTimeSeconds, ServiceTimeEstimator } from './wait-estimator';

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

describe('drainTimeSeconds', () => {
  it('is at least 1 even with nothing waiting', () => {
    assert.equal(drainTimeSeconds(0, 3, 1000), 1);
    assert.equal(drainTimeSeconds(1, 3, 10), 1);
    assert.equal(drainTimeSeconds(5, 3, Number.NaN), 1);
  });

  it('rounds up to whole seconds over whole rounds', () => {
    assert.equal(drainTimeSeconds(10, 3, 1500), 6);
    assert.equal(drainTimeSeconds(6, 3, 1200), 3);
  });
});
