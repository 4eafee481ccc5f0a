import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RestartBackoff } from './restart-backoff';

describe('RestartBackoff', () => {
  const options = { initialMs: 100, maxMs: 1000, stableMs: 5000 };

  it('replaces a worker that ran for a while after the initial delay', () => {
    const backoff = new RestartBackoff(options);
    assert.equal(backoff.delayAfter(60_000), 100);
    assert.equal(backoff.delayAfter(60_000), 100);
  });

  it('doubles the delay for each quick death, up to the bound', () => {
    const backoff = new RestartBackoff(options);
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => backoff.delayAfter(10)), [100, 200, 400, 800, 1000, 1000]);
  });

  it('starts the doubling afresh once a worker has run stably', () => {
    const backoff = new RestartBackoff(options);
    backoff.delayAfter(10);
    backoff.delayAfter(10);
    assert.equal(backoff.delayAfter(10), 400);
    assert.equal(backoff.delayAfter(5000), 100);
    assert.equal(backoff.delayAfter(10), 200);
  });
});
