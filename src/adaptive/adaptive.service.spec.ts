import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { BreakerService } from '../breaker/breaker.service';
import { FakeClock } from '../common/clock';
import type { QueueFigures } from '../queue/queue-figures.service';
import { UpstreamOutcomes } from '../upstream/upstream-outcomes';
import { AdaptiveService } from './adaptive.service';

const RESET_MS = 60_000;

function setup() {
  const clock = new FakeClock();
  const queue = { waiting: 0, active: 0 };
  const figures = { snapshot: () => ({ ...queue, byPriority: { high: 0, normal: queue.waiting, low: 0 }, localActive: 0, averageServiceMs: 100, fresh: true, refreshedAt: clock.now() }) } as unknown as QueueFigures;
  const breakers = { list: () => [] } as unknown as BreakerService;
  const outcomes = new UpstreamOutcomes();
  const scheduler = new SchedulerRegistry();
  const adaptive = new AdaptiveService(
    { queueRejectionThreshold: 0.8, abandonedRejectionThreshold: 0.7, maxAbandoned: 10, resetIntervalMs: RESET_MS, degradedMaxTokens: 256 },
    { maxQueueSize: 10, maxConcurrent: 2, jobResultTtlMs: 1000, jobTimeoutMs: 1000, lockMs: 1000, workerEnabled: true },
    figures,
    breakers,
    outcomes,
    scheduler,
    clock,
  );
  return { adaptive, outcomes, scheduler, clock, queue };
}

describe('AdaptiveService', () => {
  it('registers the scheduled reset with the scheduler, and each run resets the abandoned counters and totals', (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    Logger.overrideLogger(false);
    t.after(() => Logger.overrideLogger(['log', 'error', 'warn']));
    const { adaptive, outcomes, scheduler } = setup();
    adaptive.onApplicationBootstrap();
    t.after(() => {
      adaptive.onApplicationShutdown();
      clearInterval(scheduler.getInterval('abandoned-reset'));
    });
    assert.ok(scheduler.getIntervals().includes('abandoned-reset'));
    for (let i = 0; i < 3; i++) outcomes.record({ upstream: 'u', model: 'm', outcome: 'timeout', durationMs: 10, abandoned: true });
    outcomes.record({ upstream: 'u', model: 'm', outcome: 'success', durationMs: 10 });
    adaptive.noteAdmission(false);
    assert.equal(adaptive.abandoned.totalSinceReset(), 3);
    assert.equal(adaptive.gracefulDegradation().upstream_statistics.total_requests, 4);
    assert.equal(adaptive.gracefulDegradation().rejection_rate, 100);

    t.mock.timers.tick(RESET_MS - 1);
    assert.equal(adaptive.abandoned.totalSinceReset(), 3, 'not before its period');
    t.mock.timers.tick(1);
    assert.equal(adaptive.abandoned.totalSinceReset(), 0);
    const after = adaptive.gracefulDegradation();
    assert.equal(after.upstream_statistics.total_requests, 0);
    assert.equal(after.rejection_rate, 0);

    outcomes.record({ upstream: 'u', model: 'm', outcome: 'timeout', durationMs: 10, abandoned: true });
    t.mock.timers.tick(RESET_MS);
    assert.equal(adaptive.abandoned.totalSinceReset(), 0, 'runs again every period');
  });

  it("re-evaluates the strategy on demand once the last evaluation is 100 ms old, so a dwell ends when due", () => {
    Logger.overrideLogger(false);
    try {
      const { adaptive, clock, queue } = setup();
      queue.waiting = 10;
      queue.active = 2;
      adaptive.evaluate();
      assert.equal(adaptive.strategy, 'critical');
      queue.waiting = 0;
      queue.active = 0;
      clock.advance(50);
      assert.equal(adaptive.freshEffects().admits('normal'), false, 'still fresh: no re-evaluation');
      clock.advance(2000);
      assert.equal(adaptive.freshEffects().admits('normal'), true);
      assert.equal(adaptive.strategy, 'healthy');
    } finally {
      Logger.overrideLogger(['log', 'error', 'warn']);
    }
  });
});
