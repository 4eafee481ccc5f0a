import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SIGNAL_REPEAT_WINDOW_MS, StopSignals } from './stop-signals';

describe('StopSignals', () => {
  it('stops on the first signal', () => {
    assert.equal(new StopSignals().receive(10_000), 'stop');
  });

  it('counts signals within the window of the first as the same request, however many', () => {
    const signals = new StopSignals(1000);
    assert.equal(signals.receive(10_000), 'stop');
    assert.equal(signals.receive(10_005), 'repeat');
    assert.equal(signals.receive(10_999), 'repeat');
  });

  it('forces on a signal at or past the window, and on every one after it', () => {
    const signals = new StopSignals(1000);
    signals.receive(10_000);
    assert.equal(signals.receive(11_000), 'force');
    assert.equal(signals.receive(11_001), 'force');
  });

  it('measures the window from the first signal, not from the last repeat', () => {
    const signals = new StopSignals(1000);
    signals.receive(10_000);
    assert.equal(signals.receive(10_900), 'repeat');
    assert.equal(signals.receive(11_100), 'force');
  });

  it('uses a one-second window by default', () => {
    const signals = new StopSignals();
    signals.receive(0);
    assert.equal(signals.receive(SIGNAL_REPEAT_WINDOW_MS - 1), 'repeat');
    assert.equal(signals.receive(SIGNAL_REPEAT_WINDOW_MS), 'force');
  });
});
