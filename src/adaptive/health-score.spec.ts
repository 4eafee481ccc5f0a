import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../common/clock';
import {
  computeHealthScore,
  DEFAULT_STRATEGY_THRESHOLDS,
  HealthInputs,
  Strategy,
  StrategySelector,
} from './health-score';

const NOW = 1_700_000_000_000;
const STALE_MS = 10_000;
const PERFECT: HealthInputs = {
  queueFill: 0,
  inflightUse: 0,
  abandonedUse: 0,
  errorRate: 0,
  timeoutRate: 0,
  openBreakerShare: 0,
};

function score(overrides: Partial<HealthInputs>): number {
  return computeHealthScore({ ...PERFECT, ...overrides }, NOW, STALE_MS);
}

describe('computeHealthScore', () => {
  it('is 1 for perfect inputs', () => {
    assert.equal(score({}), 1);
  });

  it('drops below the critical threshold from a full queue alone', () => {
    assert.ok(score({ queueFill: 1 }) < DEFAULT_STRATEGY_THRESHOLDS.critical, `got ${score({ queueFill: 1 })}`);
  });

  it('drops below the critical threshold when all breakers are open', () => {
    assert.equal(score({ openBreakerShare: 1 }), 0);
    // Half the breakers open (one model of two, say) is a partial outage: stressed or degraded, not critical.
    assert.equal(score({ openBreakerShare: 0.5 }), 0.75);
  });

  it('stays in [0,1] and rounds to 2 decimals for wild inputs', () => {
    const worst = score({
      queueFill: 5, inflightUse: 5, abandonedUse: 9, errorRate: 2, timeoutRate: 2, openBreakerShare: 3,
    });
    assert.equal(worst, 0);
    assert.equal(score({ queueFill: -3, errorRate: Number.NaN }), 1);
    const mid = score({ queueFill: 0.33, errorRate: 0.17 });
    assert.equal(mid, Math.round(mid * 100) / 100);
    assert.ok(mid > 0 && mid < 1);
  });

  it('is lowered by moderate problems compounding', () => {
    const one = score({ errorRate: 0.5 });
    const two = score({ errorRate: 0.5, queueFill: 0.5 });
    assert.ok(two < one, `${two} should be below ${one}`);
  });

  it('uses a fresh upstream load and ignores a stale one', () => {
    const busy = { waiting: 40, kvCacheUsage: 0.98 };
    const fresh = score({ upstreamLoad: { ...busy, observedAt: NOW - 1_000 } });
    const stale = score({ upstreamLoad: { ...busy, observedAt: NOW - STALE_MS - 1 } });
    assert.ok(fresh < 1, `fresh load should lower the score, got ${fresh}`);
    assert.equal(stale, 1);
  });

  it('ignores KV-cache usage below the knee', () => {
    assert.equal(score({ upstreamLoad: { waiting: 0, kvCacheUsage: 0.5, observedAt: NOW } }), 1);
  });
});

describe('StrategySelector', () => {
  function setup(minDwellMs = 2000) {
    const clock = new FakeClock();
    return { clock, selector: new StrategySelector(undefined, undefined, minDwellMs, clock) };
  }

  it('starts healthy and worsens immediately', () => {
    const { selector } = setup();
    assert.equal(selector.current, 'healthy');
    assert.deepEqual(selector.update(0.79), { strategy: 'stressed', changed: true, previous: 'healthy' });
    assert.deepEqual(selector.update(0.59), { strategy: 'degraded', changed: true, previous: 'stressed' });
    assert.equal(selector.current, 'degraded');
  });

  it('jumps several levels at once when worsening', () => {
    const { selector } = setup();
    assert.deepEqual(selector.update(0.1), { strategy: 'critical', changed: true, previous: 'healthy' });
  });

  it('does not improve inside the hysteresis band even after the dwell time', () => {
    const { clock, selector } = setup();
    selector.update(0.5);
    clock.advance(10_000);
    assert.equal(selector.update(0.62).changed, false);
    assert.equal(selector.update(0.64).strategy, 'degraded');
  });

  it('does not improve before the dwell time even above the band', () => {
    const { clock, selector } = setup(2000);
    selector.update(0.5);
    clock.advance(1999);
    assert.deepEqual(selector.update(0.7), { strategy: 'degraded', changed: false, previous: 'degraded' });
    clock.advance(1);
    assert.deepEqual(selector.update(0.7), { strategy: 'stressed', changed: true, previous: 'degraded' });
  });

  it('improves at exactly threshold + hysteresis', () => {
    const { clock, selector } = setup();
    selector.update(0.5);
    clock.advance(2000);
    assert.equal(selector.update(0.65).strategy, 'stressed');
  });

  it('jumps several levels at once when improving', () => {
    const { clock, selector } = setup();
    selector.update(0.1);
    clock.advance(2000);
    assert.deepEqual(selector.update(0.95), { strategy: 'healthy', changed: true, previous: 'critical' });
  });

  it('improves only as far as the band allows', () => {
    const { clock, selector } = setup();
    selector.update(0.1);
    clock.advance(2000);
    assert.equal(selector.update(0.82).strategy, 'stressed');
  });

  it('restarts the dwell time on every change, including worsening', () => {
    const { clock, selector } = setup();
    selector.update(0.7);
    clock.advance(5000);
    selector.update(0.5);
    clock.advance(1000);
    assert.equal(selector.update(0.9).strategy, 'degraded');
  });

  it('does not flap when the score oscillates ±0.02 around a threshold', () => {
    const { clock, selector } = setup();
    const seen: Strategy[] = [];
    let changes = 0;
    for (let i = 0; i < 40; i++) {
      const result = selector.update(i % 2 === 0 ? 0.58 : 0.62);
      if (result.changed) changes++;
      seen.push(result.strategy);
      clock.advance(500);
    }
    assert.equal(changes, 1, 'only the first drop into degraded');
    assert.ok(seen.every((s) => s === 'degraded'));
  });

  it('ignores a NaN score', () => {
    const { selector } = setup();
    selector.update(0.5);
    assert.deepEqual(selector.update(Number.NaN), { strategy: 'degraded', changed: false, previous: 'degraded' });
  });

  it('rejects disordered thresholds', () => {
    const clock = new FakeClock();
    assert.throws(
      () => new StrategySelector({ stressed: 0.5, degraded: 0.6, critical: 0.3 }, 0.05, 0, clock),
      RangeError,
    );
  });
});
