import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../common/clock';
import { QueueFigures } from './queue-figures.service';

function figures(state: { normal: number; inUse: number; byKey?: [string, number][] }, maxConcurrent = 2) {
  const slots = {
    figures: async () => ({ byPriority: { high: 0, normal: state.normal, low: 0 }, inUse: state.inUse, putBack: 0, byKey: new Map(state.byKey ?? []) }),
  };
  return new QueueFigures(slots as never, { maxConcurrent, maxQueueSize: 50 } as never, new FakeClock(1_700_000_000_000) as never);
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
    const slots = { figures: async () => ({ byPriority: { high: 0, normal: 2, low: 0 }, inUse: 2, putBack: 0, byKey: new Map() }) };
    const f = new QueueFigures(slots as never, { maxConcurrent: 2, maxQueueSize: 50 } as never, clock as never);
    await f.refresh();
    const endLong = f.trackRunning(1800);
    f.trackRunning(300);
    clock.advance(100);
    // Two ahead fill the two slots as they free: one whole round (1 s average) then the earliest end, 200 ms on.
    assert.equal(f.estimateWaitMs('normal'), 1200);
    endLong();
    // Now only one of the two busy slots is known here: fall back to half a service time.
    assert.equal(f.estimateWaitMs('normal'), 1500);
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
  });
});
