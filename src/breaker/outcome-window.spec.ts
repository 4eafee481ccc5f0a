import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OutcomeWindow } from './outcome-window';

const OK = { failure: false, slow: false };
const FAIL = { failure: true, slow: false };
const SLOW = { failure: false, slow: true };
const SLOW_FAIL = { failure: true, slow: true };
const T0 = 1_000_000;

describe('OutcomeWindow', () => {
  it('counts outcomes below capacity', () => {
    const w = new OutcomeWindow(5, 60_000);
    w.record(OK, T0);
    w.record(FAIL, T0);
    w.record(SLOW, T0);
    w.record(SLOW_FAIL, T0);
    assert.deepEqual(w.counts(T0), { calls: 4, failures: 2, slowCalls: 2 });
  });

  it('wraps at size, dropping the oldest outcome', () => {
    const w = new OutcomeWindow(3, 60_000);
    w.record(FAIL, T0);
    w.record(FAIL, T0);
    w.record(OK, T0);
    assert.deepEqual(w.counts(T0), { calls: 3, failures: 2, slowCalls: 0 });
    w.record(OK, T0); // evicts the first FAIL
    assert.deepEqual(w.counts(T0), { calls: 3, failures: 1, slowCalls: 0 });
    w.record(SLOW, T0); // evicts the second FAIL
    assert.deepEqual(w.counts(T0), { calls: 3, failures: 0, slowCalls: 1 });
  });

  it('keeps exact sums over many wraps', () => {
    const size = 7;
    const w = new OutcomeWindow(size, 60_000);
    const pattern = [FAIL, OK, SLOW, SLOW_FAIL, OK, OK, FAIL, SLOW, OK, FAIL, OK];
    const history: (typeof OK)[] = [];
    for (let i = 0; i < 100; i++) {
      const o = pattern[(i * 5) % pattern.length]!;
      history.push(o);
      w.record(o, T0 + i);
      const last = history.slice(-size);
      assert.deepEqual(w.counts(T0 + i), {
        calls: last.length,
        failures: last.filter((x) => x.failure).length,
        slowCalls: last.filter((x) => x.slow).length,
      });
    }
  });

  it('stops counting outcomes older than maxAgeMs', () => {
    const w = new OutcomeWindow(10, 1_000);
    w.record(FAIL, T0);
    w.record(SLOW, T0 + 500);
    w.record(OK, T0 + 900);
    assert.deepEqual(w.counts(T0 + 1_000), { calls: 3, failures: 1, slowCalls: 1 });
    assert.deepEqual(w.counts(T0 + 1_001), { calls: 2, failures: 0, slowCalls: 1 });
    assert.deepEqual(w.counts(T0 + 1_501), { calls: 1, failures: 0, slowCalls: 0 });
    assert.deepEqual(w.counts(T0 + 5_000), { calls: 0, failures: 0, slowCalls: 0 });
  });

  it('evicts aged outcomes on write too, and keeps working after the ring wrapped', () => {
    const w = new OutcomeWindow(3, 1_000);
    w.record(FAIL, T0);
    w.record(FAIL, T0 + 100);
    w.record(FAIL, T0 + 200);
    w.record(OK, T0 + 1_050); // first FAIL aged out; ring position reused
    assert.deepEqual(w.counts(T0 + 1_050), { calls: 3, failures: 2, slowCalls: 0 });
    w.record(OK, T0 + 1_250); // second and third aged out
    assert.deepEqual(w.counts(T0 + 1_250), { calls: 2, failures: 0, slowCalls: 0 });
  });

  it('clear forgets everything and the window is reusable', () => {
    const w = new OutcomeWindow(2, 60_000);
    w.record(FAIL, T0);
    w.record(SLOW_FAIL, T0);
    w.clear();
    assert.deepEqual(w.counts(T0), { calls: 0, failures: 0, slowCalls: 0 });
    w.record(FAIL, T0);
    assert.deepEqual(w.counts(T0), { calls: 1, failures: 1, slowCalls: 0 });
  });

  it('rejects invalid sizes', () => {
    assert.throws(() => new OutcomeWindow(0, 1_000), RangeError);
    assert.throws(() => new OutcomeWindow(1.5, 1_000), RangeError);
    assert.throws(() => new OutcomeWindow(10, 0), RangeError);
  });
});
