import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../common/clock';
import { QueueFigures } from './queue-figures.service';

const NONE = { ms: 0, count: 0 };

function slotFigures(state: { normal: number; inUse: number; byKey?: [string, number][]; priced?: { ms: number; count: number } }) {
  return {
    figures: async () => ({
      byPriority: { high: 0, normal: state.normal, low: 0 },
      priced: { high: NONE, normal: state.priced ?? NONE, low: NONE },
      inUse: state.inUse,
      putBack: 0,
      byKey: new Map(state.byKey ?? []),
    }),
  };
}

function figures(state: { normal: number; inUse: number; byKey?: [string, number][]; priced?: { ms: number; count: number } }, maxConcurrent = 2) {
  return new QueueFigures(slotFigures(state) as never, { maxConcurrent, maxQueueSize: 50 } as never, new FakeClock(1_700_000_000_000) as never);
}

describe('QueueFigures', () => {
  it('estimates no wait while a slot is free for the request', async () => {
    const f = figures({ normal: 0, inUse: 1 });
    await f.refresh();
    assert.equal(f.estimateWaitMs('normal'), 0);
  });

  it('with every slot busy and nobody waiting, a request still waits for a running one to end', async () => {
    const f = figures({ normal: 0, inUse: 2 });
    await f.refresh();
    // Half of the (initial) 1 s service time: the earliest of the running requests to finish, on average.
    assert.equal(f.estimateWaitMs('normal'), 500);
  });

  it('when every running request runs here, the first slot frees when the earliest of them is expected to end', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const f = new QueueFigures(slotFigures({ normal: 2, inUse: 2 }) as never, { maxConcurrent: 2, maxQueueSize: 50 } as never, clock as never);
    await f.refresh();
    const endLong = f.trackRunning(1800);
    f.trackRunning(300);
    clock.advance(100);
    // Slots free at 200 and 1700 ms; the two ahead (1 s each, the average) start at 200 and 1200.
    assert.equal(f.estimateWaitMs('normal'), 1700);
    endLong();
    // Now only one of the two busy slots is known here: the other frees in half a service time.
    assert.equal(f.estimateWaitMs('normal'), 1200);
  });

  it('prices the requests waiting ahead by their own expected service time', async () => {
    const small = figures({ normal: 4, inUse: 2, priced: { ms: 400, count: 4 } });
    await small.refresh();
    assert.equal(small.estimateWaitMs('normal'), 700);
    // Two of four priced (2 s in all), two at the average (1 s each).
    const mixed = figures({ normal: 4, inUse: 2, priced: { ms: 2000, count: 2 } });
    await mixed.refresh();
    assert.equal(mixed.estimateWaitMs('normal'), 2500);
  });

  it('a priced job started here leaves the estimate at once, before the next refresh', async () => {
    const f = figures({ normal: 4, inUse: 1, priced: { ms: 400, count: 4 } });
    await f.refresh();
    f.jobStarted('normal', 0, { queue: true, clientId: 'k', expectedServiceMs: 100 });
    // The started job takes the free slot; three ahead at 100 ms on two slots freeing at 500: 500, 500, 600, then its turn.
    assert.equal(f.estimateWaitMs('normal'), 600);
  });

  it('a request queued here counts at once, before the next refresh shows it', async () => {
    const f = figures({ normal: 0, inUse: 2 });
    await f.refresh();
    f.jobQueued('normal', 2000);
    f.jobQueued('normal', 2000);
    assert.equal(f.waitingAhead('normal'), 2);
    // Slots free at 500 and 500 (running elsewhere); two of 2 s ahead: its turn at 2500.
    assert.equal(f.estimateWaitMs('normal'), 2500);
  });

  it('the Retry-After of a full queue is its priced work drained through every slot', async () => {
    const f = figures({ normal: 10, inUse: 2, priced: { ms: 9000, count: 6 } });
    await f.refresh();
    // 9 s priced + 4 at the 1 s average = 13 s over 2 slots: 6.5 s, rounded up.
    assert.equal(f.retryAfterMs(), 7000);
    assert.equal(f.retryAfterMs(2), 2000);
  });

  it('counts whole rounds of the requests ahead, then half a service time', async () => {
    const f = figures({ normal: 4, inUse: 2 });
    await f.refresh();
    assert.equal(f.estimateWaitMs('normal'), 2500);
    // High priority has nobody ahead of it.
    assert.equal(f.estimateWaitMs('high'), 500);
  });

  it('a key holding less than an equal share while another holds more is within its fair share', async () => {
    const f = figures({ normal: 12, inUse: 2, byKey: [['noisy', 11], ['light', 1]] });
    await f.refresh();
    assert.equal(f.withinFairShare('light'), true);
    assert.equal(f.withinFairShare('newcomer'), true);
    assert.equal(f.withinFairShare('noisy'), false);
    assert.equal(f.waitingOf('noisy'), 11);
    f.jobStarted('normal', 0, { queue: true, clientId: 'noisy' });
    assert.equal(f.waitingOf('noisy'), 10);
  });
});
