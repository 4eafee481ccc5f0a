import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProbePermits } from './probe-permits';

/** A claim answered when the test says so. */
function scripted() {
  const pending: ((won: boolean) => void)[] = [];
  let calls = 0;
  const claim = () => {
    calls++;
    return new Promise<boolean>((resolve) => pending.push(resolve));
  };
  return { claim, answer: (won: boolean) => pending.shift()?.(won), calls: () => calls };
}

describe('ProbePermits', () => {
  it('makes concurrent requests share one claim, and remembers a won permit', async () => {
    const redis = scripted();
    const permits = new ProbePermits(redis.claim, () => 0);
    const both = Promise.all([permits.acquire('k', 1000), permits.acquire('k', 1000)]);
    redis.answer(true);
    assert.deepEqual(await both, [true, true]);
    assert.equal(redis.calls(), 1);
    assert.equal(permits.holds('k'), true);
    assert.equal(await permits.acquire('k', 1000), true);
    assert.equal(redis.calls(), 1, 'a held permit needs no claim');
  });

  it('holds nothing when another instance has the permit or Redis fails', async () => {
    const permits = new ProbePermits(async (key) => {
      if (key === 'broken') throw new Error('ECONNREFUSED');
      return false;
    }, () => 0);
    assert.equal(await permits.acquire('k', 1000), false);
    assert.equal(await permits.acquire('broken', 1000), false);
    assert.equal(permits.holds('k') || permits.holds('broken'), false);
  });

  it('does not take a permit whose claim was answered after the round ended', async () => {
    const redis = scripted();
    const permits = new ProbePermits(redis.claim, () => 0);
    const claimed = permits.acquire('k', 1000);
    permits.drop('k');
    redis.answer(true);
    assert.equal(await claimed, false);
    assert.equal(permits.holds('k'), false);
  });

  it('answers false when Redis does not answer in time', async () => {
    const redis = scripted();
    const permits = new ProbePermits(redis.claim, () => 0);
    assert.equal(await permits.acquire('k', 10), false);
    redis.answer(true);
    await new Promise((r) => setImmediate(r));
    assert.equal(permits.holds('k'), true, 'the late answer still counts for the next request');
  });

  it('after a lost claim, refuses without asking Redis for a short while, then asks again', async () => {
    let now = 0;
    let calls = 0;
    const permits = new ProbePermits(async () => (calls++, false), () => now, 200);
    assert.equal(await permits.acquire('k', 1000), false);
    now += 199;
    assert.equal(await permits.acquire('k', 1000), false);
    assert.equal(calls, 1);
    now += 1;
    assert.equal(await permits.acquire('k', 1000), false);
    assert.equal(calls, 2);
    permits.drop('k');
    assert.equal(await permits.acquire('k', 1000), false);
    assert.equal(calls, 3, 'a new round asks at once');
  });
});
