import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../common/clock';
import { BreakerOptions, BreakerSnapshot, BreakerState, CircuitBreaker, GrantedPermit } from './circuit-breaker';

// prettier-ignore
const BASE: BreakerOptions = {
  windowSize: 100, minCalls: 10, failureRatio: 0.5, windowMs: 60_000, cooldownMs: 1_000,
  halfOpenProbes: 2, slowCallMs: 5_000, slowCallRatio: 0.8,
};

function setup(overrides: Partial<BreakerOptions> = {}) {
  const clock = new FakeClock();
  const breaker = new CircuitBreaker({ ...BASE, ...overrides }, clock);
  const transitions: [BreakerState, BreakerState][] = [];
  breaker.onTransition = (from, to, snap) => {
    assert.equal(snap.state, to);
    transitions.push([from, to]);
  };
  return { clock, breaker, transitions };
}

/** Runs `n` acquired calls that succeed (or, with durationMs = 'fail', fail after 10 ms). */
function calls(b: CircuitBreaker, n: number, durationMs: number | 'fail'): void {
  for (let i = 0; i < n; i++) {
    assert.equal(b.tryAcquire().allowed, true);
    if (durationMs === 'fail') b.onFailure(10);
    else b.onSuccess(durationMs);
  }
}
const succeed = (b: CircuitBreaker, n = 1, durationMs = 10) => calls(b, n, durationMs);
const fail = (b: CircuitBreaker, n = 1) => calls(b, n, 'fail');

/** Opens the breaker from closed with minCalls failures. */
function trip(b: CircuitBreaker): void {
  fail(b, BASE.minCalls);
  assert.equal(b.state, 'open');
}

/** Takes a probe permit and returns it. */
function probe(b: CircuitBreaker): GrantedPermit {
  const permit = b.tryAcquire();
  assert.ok(permit.allowed && permit.probe, `expected a probe permit, got ${JSON.stringify(permit)}`);
  return permit;
}

/** Takes an ordinary (closed-state) permit and returns it. */
function permitted(b: CircuitBreaker): GrantedPermit {
  const permit = b.tryAcquire();
  assert.ok(permit.allowed && !permit.probe, `expected an ordinary permit, got ${JSON.stringify(permit)}`);
  return permit;
}

/** Asserts the listed snapshot fields only. */
function expectSnap(b: CircuitBreaker, expected: Partial<BreakerSnapshot>, message?: string): void {
  const snap = b.snapshot();
  const actual = Object.fromEntries(Object.keys(expected).map((k) => [k, snap[k as keyof BreakerSnapshot]]));
  assert.deepEqual(actual, expected, message);
}

describe('CircuitBreaker', () => {
  it('goes closed → open → half_open → closed in exact sequence', () => {
    const { clock, breaker, transitions } = setup();
    permitted(breaker);
    fail(breaker, 9);
    assert.equal(breaker.state, 'closed');
    fail(breaker);
    assert.equal(breaker.state, 'open');
    assert.deepEqual(breaker.tryAcquire(), { allowed: false, retryInMs: 1_000 });
    clock.advance(999);
    assert.deepEqual(breaker.tryAcquire(), { allowed: false, retryInMs: 1 });
    clock.advance(1);
    probe(breaker);
    assert.equal(breaker.state, 'half_open');
    probe(breaker);
    breaker.onSuccess(10);
    assert.equal(breaker.state, 'half_open');
    breaker.onSuccess(10);
    assert.equal(breaker.state, 'closed');
    assert.deepEqual(transitions, [['closed', 'open'], ['open', 'half_open'], ['half_open', 'closed']]);
    assert.equal(breaker.snapshot().calls, 0, 'closing clears the window');
  });

  it('stays closed below minCalls even with 100% failures', () => {
    const { breaker } = setup({ minCalls: 20 });
    fail(breaker, 19);
    expectSnap(breaker, { state: 'closed', failureRatio: 1 });
    fail(breaker);
    assert.equal(breaker.state, 'open');
  });

  it('judges the ratio, not the count: 1,000 successes then 10 failures stays closed', () => {
    const { breaker } = setup({ windowSize: 2_000 });
    succeed(breaker, 1_000);
    fail(breaker, 10);
    expectSnap(breaker, { state: 'closed', calls: 1_010, failures: 10 });
  });

  it('with a window of 100, 10 failures among the last 100 calls stays closed', () => {
    const { breaker } = setup({ windowSize: 100 });
    succeed(breaker, 1_000);
    fail(breaker, 10);
    expectSnap(breaker, { state: 'closed', calls: 100, failures: 10, failureRatio: 0.1 });
  });

  it('opens at exactly the failure ratio', () => {
    const { breaker } = setup({ windowSize: 10, minCalls: 10, failureRatio: 0.5 });
    succeed(breaker, 6);
    fail(breaker, 4);
    assert.equal(breaker.state, 'closed', '4/10 is below 0.5');
    fail(breaker); // evicts the oldest success: 5/10
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.snapshot().failureRatio, 0.5);

    const other = setup({ windowSize: 10, minCalls: 10, failureRatio: 0.3 }).breaker;
    succeed(other, 7);
    fail(other, 2);
    assert.equal(other.state, 'closed');
    fail(other);
    assert.equal(other.state, 'open', '3/10 reaches 0.3 without an epsilon');
  });

  it('lets old failures age out instead of opening', () => {
    const { clock, breaker } = setup({ minCalls: 5, windowMs: 60_000 });
    fail(breaker, 4);
    clock.advance(60_001);
    succeed(breaker, 3);
    fail(breaker, 2);
    expectSnap(breaker, { state: 'closed', calls: 5 }, '2/5 recent failures; 6/9 had the old ones counted');
  });

  it('half-open allows exactly N probes in total, then refuses', () => {
    const { clock, breaker } = setup({ halfOpenProbes: 3 });
    trip(breaker);
    clock.advance(1_000);
    probe(breaker);
    breaker.onSuccess(10);
    probe(breaker);
    breaker.onSuccess(10);
    probe(breaker);
    const refused = breaker.tryAcquire();
    assert.ok(!refused.allowed && refused.retryInMs >= 0 && refused.retryInMs <= 1_000);
    expectSnap(breaker, { state: 'half_open', probesInFlight: 1, probeSuccesses: 2 });
    breaker.onSuccess(10);
    assert.equal(breaker.state, 'closed');
  });

  it('a failed probe reopens with doubled cooldown', () => {
    const { clock, breaker, transitions } = setup();
    trip(breaker);
    clock.advance(1_000);
    probe(breaker);
    probe(breaker);
    breaker.onSuccess(10);
    breaker.onFailure();
    expectSnap(breaker, { state: 'open', cooldownMs: 2_000, openedAt: clock.now() });
    assert.deepEqual(transitions.at(-1), ['half_open', 'open']);
    clock.advance(1_999);
    assert.deepEqual(breaker.tryAcquire(), { allowed: false, retryInMs: 1 });
    clock.advance(1);
    probe(breaker);
  });

  it('doubling caps at 10× the base cooldown', () => {
    const { clock, breaker } = setup({ halfOpenProbes: 1 });
    trip(breaker);
    const cooldowns: number[] = [breaker.snapshot().cooldownMs];
    for (let i = 0; i < 6; i++) {
      clock.advance(cooldowns.at(-1)!);
      probe(breaker);
      breaker.onFailure();
      cooldowns.push(breaker.snapshot().cooldownMs);
    }
    assert.deepEqual(cooldowns, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]);

    const custom = setup({ halfOpenProbes: 1, maxCooldownMultiplier: 3 });
    trip(custom.breaker);
    for (const expected of [2_000, 3_000, 3_000]) {
      custom.clock.advance(custom.breaker.snapshot().retryInMs);
      probe(custom.breaker);
      custom.breaker.onFailure();
      assert.equal(custom.breaker.snapshot().cooldownMs, expected);
    }
  });

  it('successful probes close it and reset the cooldown to base', () => {
    const { clock, breaker } = setup({ halfOpenProbes: 1 });
    trip(breaker);
    clock.advance(1_000);
    probe(breaker);
    breaker.onFailure();
    clock.advance(2_000);
    probe(breaker);
    breaker.onSuccess(10);
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.snapshot().cooldownMs, 1_000);
    trip(breaker);
    assert.equal(breaker.snapshot().retryInMs, 1_000);
  });

  it('release() frees a probe slot without judging', () => {
    const { clock, breaker } = setup({ halfOpenProbes: 1 });
    trip(breaker);
    clock.advance(1_000);
    probe(breaker);
    assert.equal(breaker.tryAcquire().allowed, false);
    breaker.release();
    expectSnap(breaker, { state: 'half_open', probesInFlight: 0, probeSuccesses: 0 });
    probe(breaker);
    breaker.onSuccess(10);
    assert.equal(breaker.state, 'closed');
  });

  it('a high slow-call rate opens it', () => {
    const { breaker } = setup({ windowSize: 10, slowCallMs: 1_000, slowCallRatio: 0.5, failureRatio: 0.9 });
    succeed(breaker, 6, 1_000); // exactly slowCallMs is not slow
    succeed(breaker, 4, 1_001);
    assert.equal(breaker.state, 'closed', '4/10 slow');
    assert.equal(breaker.snapshot().slowCalls, 4);
    assert.equal(breaker.tryAcquire().allowed, true);
    breaker.onFailure(1_500); // a slow failure is slow too; the oldest fast call leaves: 5/10
    expectSnap(breaker, { state: 'open', slowCallRatio: 0.5, failures: 1 });
  });

  it('openFor extends an open period but never shortens it', () => {
    const { clock, breaker, transitions } = setup({ halfOpenProbes: 1 });
    trip(breaker);
    clock.advance(200);
    breaker.openFor(500);
    assert.equal(breaker.snapshot().retryInMs, 800);
    breaker.openFor(5_000);
    assert.equal(breaker.snapshot().retryInMs, 5_000);
    assert.deepEqual(transitions.at(-1), ['open', 'open'], 'extension is reported for republication');
    clock.advance(1_000);
    breaker.openFor(100);
    assert.equal(breaker.snapshot().retryInMs, 4_000);
    clock.advance(4_000);
    probe(breaker);
    breaker.onFailure();
    assert.equal(breaker.snapshot().cooldownMs, 2_000, 'doubling starts from the cooldown, not the hint');
  });

  it('openFor never opens for longer than the maximum cooldown', () => {
    const { breaker } = setup({ maxCooldownMultiplier: 5 });
    trip(breaker);
    breaker.openFor(86_400_000); // Retry-After: 86400
    assert.equal(breaker.snapshot().retryInMs, 5_000);
  });

  it('openFor opens a closed breaker for at least ms and at least the cooldown', () => {
    const { breaker, transitions } = setup();
    breaker.openFor(3_000);
    expectSnap(breaker, { state: 'open', retryInMs: 3_000 });
    assert.deepEqual(transitions, [['closed', 'open']]);
    const other = setup().breaker;
    other.openFor(10);
    assert.equal(other.snapshot().retryInMs, 1_000);
  });

  it('forceClose closes, clears the window and resets the cooldown', () => {
    const { clock, breaker, transitions } = setup({ halfOpenProbes: 1 });
    trip(breaker);
    clock.advance(1_000);
    probe(breaker);
    breaker.onFailure();
    breaker.forceClose();
    expectSnap(breaker, { state: 'closed', calls: 0, cooldownMs: 1_000, openedAt: null });
    assert.deepEqual(transitions.at(-1), ['open', 'closed']);
    permitted(breaker);
  });

  it('records outcomes that arrive while open without changing state', () => {
    const { breaker, transitions } = setup();
    trip(breaker);
    breaker.onSuccess(10);
    breaker.onSuccess(10);
    breaker.onFailure();
    expectSnap(breaker, { state: 'open', calls: 13 });
    assert.deepEqual(transitions, [['closed', 'open']]);
  });

  it('ignores outcomes in half_open when no probe is in flight', () => {
    const { clock, breaker } = setup();
    trip(breaker);
    clock.advance(1_000);
    breaker.onFailure(); // a call started before the breaker opened
    breaker.onSuccess(10);
    breaker.onSuccess(10);
    expectSnap(breaker, { state: 'half_open', probeSuccesses: 0 });
  });

  it('reports half_open lazily; the transition fires on the next mutating call', () => {
    const { clock, breaker, transitions } = setup();
    trip(breaker);
    clock.advance(1_000);
    assert.equal(breaker.state, 'half_open');
    assert.equal(breaker.snapshot().state, 'half_open');
    assert.deepEqual(transitions, [['closed', 'open']]);
    probe(breaker);
    assert.deepEqual(transitions, [['closed', 'open'], ['open', 'half_open']]);
  });

  it('applyRemote adopts the state without calling onTransition', () => {
    const { clock, breaker, transitions } = setup();
    breaker.applyRemote('open', clock.now() - 500, 4_000);
    assert.equal(breaker.state, 'open');
    assert.deepEqual(breaker.tryAcquire(), { allowed: false, retryInMs: 3_500 });
    breaker.onFailure();
    breaker.applyRemote('closed', null, 1_000);
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.snapshot().calls, 0, 'a remote close clears the window');
    assert.deepEqual(transitions, []);
  });

  it('applyRemote half_open keeps the probes this instance already has in flight', () => {
    const { clock, breaker } = setup({ halfOpenProbes: 1 });
    trip(breaker);
    const openedAt = clock.now();
    clock.advance(1_000);
    probe(breaker);
    breaker.applyRemote('half_open', openedAt, 1_000);
    assert.equal(breaker.tryAcquire().allowed, false);
    breaker.onSuccess(10);
    assert.equal(breaker.state, 'closed');
  });

  describe('with permits handed back', () => {
    it('release() of a call granted before the breaker opened frees no probe slot', () => {
      const { clock, breaker } = setup({ halfOpenProbes: 1 });
      const old = permitted(breaker);
      trip(breaker);
      clock.advance(1_000);
      const p = probe(breaker);
      breaker.release(old); // e.g. the old call's client went away
      expectSnap(breaker, { state: 'half_open', probesInFlight: 1 });
      assert.equal(breaker.tryAcquire().allowed, false, 'the only probe slot is still taken');
      breaker.onSuccess(10, p);
      assert.equal(breaker.state, 'closed');
    });

    it('the success of an old call is not taken for a probe success', () => {
      const { clock, breaker } = setup({ halfOpenProbes: 1 });
      const old = permitted(breaker);
      trip(breaker);
      clock.advance(1_000);
      const p = probe(breaker);
      breaker.onSuccess(10, old);
      expectSnap(breaker, { state: 'half_open', probesInFlight: 1, probeSuccesses: 0 });
      breaker.onFailure(10, p);
      assert.equal(breaker.state, 'open', 'the real probe failed');
    });

    it('the failure of an old call does not reopen a half-open breaker', () => {
      const { clock, breaker } = setup({ halfOpenProbes: 1 });
      const old = permitted(breaker);
      trip(breaker);
      clock.advance(1_000);
      const p = probe(breaker);
      breaker.onFailure(10, old);
      assert.equal(breaker.state, 'half_open');
      breaker.onSuccess(10, p);
      assert.equal(breaker.state, 'closed');
    });

    it('a probe of an earlier half-open round does not count in the next round', () => {
      const { clock, breaker } = setup({ halfOpenProbes: 2 });
      trip(breaker);
      clock.advance(1_000);
      const slow = probe(breaker);
      const failing = probe(breaker);
      breaker.onFailure(10, failing); // reopens for 2 s
      clock.advance(2_000);
      const fresh = probe(breaker);
      breaker.onSuccess(10, slow); // the slow probe of the previous round finally answers
      expectSnap(breaker, { state: 'half_open', probesInFlight: 1, probeSuccesses: 0 });
      breaker.release(slow);
      expectSnap(breaker, { probesInFlight: 1 });
      breaker.onSuccess(10, fresh);
      probe(breaker);
      breaker.onSuccess(10);
      assert.equal(breaker.state, 'closed');
    });

    it('drops outcomes of calls granted before the last close', () => {
      const { clock, breaker } = setup({ halfOpenProbes: 1, minCalls: 2 });
      const old = [permitted(breaker), permitted(breaker)];
      fail(breaker, 2);
      assert.equal(breaker.state, 'open');
      clock.advance(1_000);
      breaker.onSuccess(10, probe(breaker));
      assert.equal(breaker.state, 'closed');
      for (const permit of old) breaker.onFailure(10, permit);
      expectSnap(breaker, { state: 'closed', calls: 0 }, 'two stale failures would have reopened it');
      const fresh = permitted(breaker);
      breaker.onFailure(10, fresh);
      expectSnap(breaker, { calls: 1, failures: 1 });
    });

    it('a reset makes calls granted before it stale', () => {
      const { breaker } = setup({ minCalls: 1 });
      const old = permitted(breaker);
      breaker.forceClose();
      breaker.onFailure(10, old);
      expectSnap(breaker, { state: 'closed', calls: 0 });
    });
  });

  it('rejects inconsistent options', () => {
    const clock = new FakeClock();
    assert.throws(() => new CircuitBreaker({ ...BASE, minCalls: 101 }, clock), RangeError);
    assert.throws(() => new CircuitBreaker({ ...BASE, halfOpenProbes: 0 }, clock), RangeError);
    assert.throws(() => new CircuitBreaker({ ...BASE, cooldownMs: 0 }, clock), RangeError);
  });
});
