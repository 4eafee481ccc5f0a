import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DashboardSampler, LiveState } from './dashboard-sampler';

const T0 = 1_700_000_000_000;
const STATE: LiveState = {
  byPriority: { high: 1, normal: 2, low: 3 },
  active: 2,
  breakers: [],
  abandoned: 0,
  abandonedCapacityPercent: 0,
  timeUntilResetS: 300,
  strategy: 'healthy',
  healthScore: 1,
  waitingByKey: [{ name: 'team-a', waiting: 2 }],
  batches: { activeBatches: 1, linesWaiting: 40, linesRunning: 2, linesDone: { completed: 8, failed: 1 } },
};

describe('DashboardSampler', () => {
  it('turns the events of a tick into rates and means, then starts afresh', () => {
    const sampler = new DashboardSampler(T0);
    for (let i = 0; i < 4; i++) sampler.noteAdmitted();
    sampler.noteRefused('queue_full');
    sampler.noteRefused('queue_full');
    sampler.noteRefused('load_shed_queue');
    sampler.noteOutcome({ outcome: 'success', durationMs: 100, timeToFirstTokenMs: 20 });
    sampler.noteOutcome({ outcome: 'failure', durationMs: 300 });
    sampler.noteOutcome({ outcome: 'refused', durationMs: 0 });
    const first = sampler.take(STATE, T0 + 2000);
    assert.equal(first.waiting, 6);
    assert.deepEqual(first.queue, { high: 1, normal: 2, low: 3 });
    assert.equal(first.admittedPerS, 2);
    assert.equal(first.refusedPerS, 1.5);
    assert.deepEqual(first.refusedByReason, { queue_full: 1, load_shed_queue: 0.5 });
    assert.deepEqual(first.upstreamPerS, { success: 0.5, failure: 0.5, timeout: 0 });
    assert.equal(first.upstreamLatencyMs, 200);
    assert.equal(first.ttftMs, 20);
    assert.deepEqual(first.totals, { admitted: 4, refused: 3, upstreamCalls: 2 });
    assert.deepEqual(first.waitingByKey, [{ name: 'team-a', waiting: 2 }]);

    const second = sampler.take(STATE, T0 + 3000);
    assert.equal(second.admittedPerS, 0);
    assert.deepEqual(second.refusedByReason, {});
    assert.equal(second.upstreamLatencyMs, null);
    assert.equal(second.ttftMs, null);
    assert.deepEqual(second.totals, { admitted: 4, refused: 3, upstreamCalls: 2 }, 'totals keep counting across ticks');
  });
});
