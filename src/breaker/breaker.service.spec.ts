import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { FakeClock } from '../common/clock';
import type { breakerConfig } from '../config/sections';
import type { RedisService } from '../redis/redis.service';
import { BreakerService, MAX_OPEN_ENDED_BREAKERS } from './breaker.service';

type BreakerConfig = ReturnType<typeof breakerConfig>;

// prettier-ignore
const CONFIG: BreakerConfig = {
  windowSize: 10, minCalls: 2, failureRatio: 0.5, windowMs: 60_000, cooldownMs: 1_000,
  halfOpenProbes: 1, slowCallMs: 5_000, slowCallRatio: 2,
};

/**
 * In-memory stand-in for the Redis that instances share: a hash and a pub/sub channel, delivered
 * synchronously on `exec()` so tests can assert right after the publishing call has settled.
 */
class FakeRedisBus {
  readonly hash = new Map<string, string>();
  readonly subscribers: EventEmitter[] = [];
  status = 'ready';

  service(): RedisService {
    const bus = this;
    const client = {
      get status() {
        return bus.status;
      },
      multi() {
        const ops: (() => void)[] = [];
        const chain = {
          hset(_hash: string, key: string, value: string) {
            ops.push(() => bus.hash.set(key, value));
            return chain;
          },
          publish(channel: string, message: string) {
            ops.push(() => bus.subscribers.forEach((s) => s.emit('message', channel, message)));
            return chain;
          },
          async exec() {
            ops.forEach((op) => op());
            return [];
          },
        };
        return chain;
      },
      async hget(_hash: string, key: string) {
        return bus.hash.get(key) ?? null;
      },
      async hgetall() {
        return Object.fromEntries(bus.hash);
      },
    };
    const create = () => {
      const subscriber = Object.assign(new EventEmitter(), { subscribe: async () => 1 });
      bus.subscribers.push(subscriber);
      return subscriber;
    };
    return { client, create } as unknown as RedisService;
  }
}

async function instance(bus: FakeRedisBus, clock = new FakeClock(), config: Partial<BreakerConfig> = {}) {
  const service = new BreakerService({ ...CONFIG, ...config }, bus.service(), clock);
  await service.onApplicationBootstrap();
  return { service, clock };
}

/** Lets the fire-and-forget publications settle. */
const flush = () => new Promise((r) => setImmediate(r));

function failTimes(service: BreakerService, upstream: string, model: string, n: number, openEnded = false): void {
  for (let i = 0; i < n; i++) {
    const answer = service.tryAcquire(upstream, model, openEnded);
    assert.ok(answer.allowed);
    service.onFailure(answer.lease, 10);
  }
}

describe('BreakerService', () => {
  it('opens a breaker on one instance and the other follows through the shared channel', async () => {
    const bus = new FakeRedisBus();
    const a = await instance(bus);
    const b = await instance(bus, a.clock);
    failTimes(a.service, 'up', 'm', 2);
    await flush();
    assert.equal(a.service.isOpen('up', 'm'), true);
    assert.equal(b.service.isOpen('up', 'm'), true, 'the other instance adopted the open state');
    assert.equal(b.service.tryAcquire('up', 'm').allowed, false);
  });

  it('a new instance reads the shared state at start', async () => {
    const bus = new FakeRedisBus();
    const a = await instance(bus);
    failTimes(a.service, 'up', 'm', 2);
    await flush();
    const late = await instance(bus, a.clock);
    assert.equal(late.service.get('up:m')?.state, 'open');
  });

  it('reset closes the breaker on every instance, and 404s an unknown key', async () => {
    const bus = new FakeRedisBus();
    const a = await instance(bus);
    const b = await instance(bus, a.clock);
    failTimes(a.service, 'up', 'm', 2);
    await flush();
    const view = await b.service.reset('up:m');
    assert.equal(view?.state, 'closed');
    assert.equal(a.service.get('up:m')?.state, 'closed');
    assert.equal(a.service.tryAcquire('up', 'm').allowed, true);
    assert.equal(await a.service.reset('up:nope'), undefined);
  });

  it('reset reaches a breaker this instance only knows from the shared state', async () => {
    const bus = new FakeRedisBus();
    const a = await instance(bus);
    failTimes(a.service, 'up', 'm', 2);
    await flush();
    // Not bootstrapped: it neither loaded the shared state nor heard the announcement.
    const other = new BreakerService(CONFIG, bus.service(), a.clock);
    assert.equal(other.get('up:m'), undefined);
    assert.equal((await other.reset('up:m'))?.state, 'closed');
    assert.equal(a.service.get('up:m')?.state, 'closed', 'the instance that opened it was told');
  });

  it('does not grow its map for remote closes of breakers it never had', async () => {
    const bus = new FakeRedisBus();
    const a = await instance(bus);
    const b = await instance(bus, a.clock);
    failTimes(a.service, 'up', 'other', 1);
    await a.service.reset('up:other');
    assert.equal(b.service.get('up:other'), undefined);
  });

  it("lengthens an open period to the upstream's Retry-After, but a Retry-After alone never opens", async () => {
    const { service } = await instance(new FakeRedisBus());
    const first = service.tryAcquire('up', 'm');
    assert.ok(first.allowed);
    service.onFailure(first.lease, 10, 8_000);
    assert.equal(service.isOpen('up', 'm'), false, 'one failure is below minCalls');
    const second = service.tryAcquire('up', 'm');
    assert.ok(second.allowed);
    service.onFailure(second.lease, 10, 8_000);
    assert.equal(service.retryInMs('up', 'm'), 8_000);
  });

  it('gives an outcome to the breaker that granted the call', async () => {
    const { service, clock } = await instance(new FakeRedisBus());
    failTimes(service, 'up', 'm', 2);
    clock.advance(1_000);
    const probe = service.tryAcquire('up', 'm');
    assert.ok(probe.allowed && probe.lease.probe);
    service.release(probe.lease); // e.g. the client went away: the probe slot is free again
    const next = service.tryAcquire('up', 'm');
    assert.ok(next.allowed && next.lease.probe);
    service.onSuccess(next.lease, 10);
    assert.equal(service.get('up:m')?.state, 'closed');
  });

  describe('model names of an open-ended upstream', () => {
    it(`keeps at most ${MAX_OPEN_ENDED_BREAKERS} breakers with outcomes, then shares up:*`, async () => {
      const { service } = await instance(new FakeRedisBus(), new FakeClock(), { minCalls: 5 });
      for (let i = 0; i < MAX_OPEN_ENDED_BREAKERS; i++) failTimes(service, 'up', `model-${i}`, 1, true);
      const extra = service.tryAcquire('up', 'made-up', true);
      assert.ok(extra.allowed);
      assert.equal(extra.lease.key, 'up:*');
      service.release(extra.lease);
      assert.equal(service.list().length, MAX_OPEN_ENDED_BREAKERS + 1);
      const known = service.tryAcquire('up', 'model-3', true);
      assert.ok(known.allowed);
      assert.equal(known.lease.key, 'up:model-3', 'a model that has a breaker keeps it');
    });

    it('gives the place of an idle breaker to a new model', async () => {
      const { service, clock } = await instance(new FakeRedisBus(), new FakeClock(), { minCalls: 5 });
      for (let i = 0; i < MAX_OPEN_ENDED_BREAKERS; i++) {
        const answer = service.tryAcquire('up', `junk-${i}`, true);
        assert.ok(answer.allowed);
        service.release(answer.lease); // the upstream said 404: nothing recorded
      }
      const real = service.tryAcquire('up', 'real', true);
      assert.ok(real.allowed);
      assert.equal(real.lease.key, 'up:real');
      service.onFailure(real.lease, 10);
      assert.equal(service.list().length, MAX_OPEN_ENDED_BREAKERS);
      assert.equal(service.get('up:junk-0'), undefined, 'the oldest idle breaker made room');
      for (let i = 1; i < MAX_OPEN_ENDED_BREAKERS; i++) failTimes(service, 'up', `junk-${i}`, 1, true);
      const full = service.tryAcquire('up', 'next', true);
      assert.ok(full.allowed);
      assert.equal(full.lease.key, 'up:*', 'no breaker is idle now');
      service.release(full.lease);
      clock.advance(CONFIG.windowMs + 1);
      const later = service.tryAcquire('up', 'next', true);
      assert.ok(later.allowed);
      assert.equal(later.lease.key, 'up:next', 'outcomes aged out of the window: idle again');
    });

    it('never bounds the models a configured upstream lists', async () => {
      const { service } = await instance(new FakeRedisBus(), new FakeClock(), { minCalls: 5 });
      for (let i = 0; i <= MAX_OPEN_ENDED_BREAKERS; i++) failTimes(service, 'up', `model-${i}`, 1);
      const answer = service.tryAcquire('up', `model-${MAX_OPEN_ENDED_BREAKERS}`);
      assert.ok(answer.allowed);
      assert.equal(answer.lease.key, `up:model-${MAX_OPEN_ENDED_BREAKERS}`);
    });

    it('reports an open overflow breaker to availability checks of overflowing models', async () => {
      const { service } = await instance(new FakeRedisBus(), new FakeClock(), { minCalls: 2 });
      for (let i = 0; i < MAX_OPEN_ENDED_BREAKERS; i++) failTimes(service, 'up', `model-${i}`, 1, true);
      failTimes(service, 'up', 'x', 2, true);
      assert.equal(service.get('up:*')?.state, 'open');
      assert.equal(service.isOpen('up', 'y', true), true);
      assert.equal(service.isOpen('up', 'model-0', true), false);
    });
  });
});
