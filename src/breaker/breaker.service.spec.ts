import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../common/clock';
import type { breakerConfig } from '../config/sections';
import type { BreakerNotice } from './breaker-notice';
import type { BreakerStateStore } from './breaker-state.store';
import { BreakerService, MAX_OPEN_ENDED_BREAKERS } from './breaker.service';

type BreakerConfig = ReturnType<typeof breakerConfig>;

// prettier-ignore
const CONFIG: BreakerConfig = {
  windowSize: 10, minCalls: 2, failureRatio: 0.5, windowMs: 60_000, cooldownMs: 1_000,
  halfOpenProbes: 1, slowCallMs: 5_000, slowCallRatio: 2, probeRoundMs: 5_000,
};

/**
 * In-memory stand-in for the Redis that instances share: keys with a TTL on the fake clock, the
 * probe permit's claim, and a channel delivered synchronously, so tests can assert right after the
 * publishing call has settled. `deaf` instances miss notices, as a subscriber does while reconnecting.
 */
class FakeRedisBus {
  readonly open = new Map<string, { notice: BreakerNotice; until: number }>();
  readonly permits = new Map<string, { owner: string; until: number }>();
  readonly stores: { id: string; deaf: boolean; listeners: ((n: BreakerNotice) => void)[] }[] = [];
  claims = 0;

  constructor(readonly clock: FakeClock) {}

  store(): BreakerStateStore & { deaf: boolean } {
    const bus = this;
    const me = { id: `instance-${this.stores.length}`, deaf: false, listeners: [] as ((n: BreakerNotice) => void)[] };
    this.stores.push(me);
    const announce = (notice: BreakerNotice) =>
      bus.stores.filter((s) => s !== me && !s.deaf).forEach((s) => s.listeners.forEach((l) => l(notice)));
    return {
      instanceId: me.id,
      get deaf() {
        return me.deaf;
      },
      set deaf(value: boolean) {
        me.deaf = value;
      },
      onNotice: (listener: (n: BreakerNotice) => void) => me.listeners.push(listener),
      onResync: () => undefined,
      start: async () => undefined,
      async writeOpen(key: string, openEnded: boolean, cooldownMs: number, remainingMs: number) {
        const notice: BreakerNotice = { key, state: 'open', remainingMs, cooldownMs, openEnded, origin: me.id };
        bus.open.set(key, { notice, until: bus.clock.now() + remainingMs });
        bus.permits.delete(key);
        announce(notice);
        return true;
      },
      async writeClosed(key: string, openEnded: boolean, cooldownMs: number) {
        bus.open.delete(key);
        bus.permits.delete(key);
        announce({ key, state: 'closed', remainingMs: 0, cooldownMs, openEnded, origin: me.id });
        return true;
      },
      async claimProbe(key: string, ttlMs: number) {
        bus.claims++;
        const held = bus.permits.get(key);
        if (held && held.until > bus.clock.now() && held.owner !== me.id) return false;
        bus.permits.set(key, { owner: me.id, until: bus.clock.now() + ttlMs });
        return true;
      },
      isOpen: async (key: string) => bus.live().some((n) => n.key === key),
      readOpen: async () => bus.live(),
    } as unknown as BreakerStateStore & { deaf: boolean };
  }

  /** Open entries whose TTL has not run out, with their time left. */
  live(): BreakerNotice[] {
    const now = this.clock.now();
    return [...this.open.values()].filter((e) => e.until > now).map((e) => ({ ...e.notice, remainingMs: e.until - now }));
  }
}

async function instance(bus = new FakeRedisBus(new FakeClock()), config: Partial<BreakerConfig> = {}) {
  const store = bus.store();
  const service = new BreakerService({ ...CONFIG, ...config }, store, bus.clock);
  await service.onApplicationBootstrap();
  return { service, clock: bus.clock, store, bus, resync: () => (service as unknown as { resync(): Promise<void> }).resync() };
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
    const bus = new FakeRedisBus(new FakeClock());
    const a = await instance(bus);
    const b = await instance(bus);
    failTimes(a.service, 'up', 'm', 2);
    await flush();
    assert.equal(a.service.isOpen('up', 'm'), true);
    assert.equal(b.service.isOpen('up', 'm'), true, 'the other instance adopted the open state');
    assert.equal(b.service.tryAcquire('up', 'm').allowed, false);
  });

  it('a new instance reads the shared state at start', async () => {
    const bus = new FakeRedisBus(new FakeClock());
    const a = await instance(bus);
    failTimes(a.service, 'up', 'm', 2);
    await flush();
    const late = await instance(bus);
    assert.equal(late.service.get('up:m')?.state, 'open');
  });

  it('reset closes the breaker on every instance, and 404s an unknown key', async () => {
    const bus = new FakeRedisBus(new FakeClock());
    const a = await instance(bus);
    const b = await instance(bus);
    failTimes(a.service, 'up', 'm', 2);
    await flush();
    const view = await b.service.reset('up:m');
    assert.equal(view?.state, 'closed');
    assert.equal(a.service.get('up:m')?.state, 'closed');
    assert.equal(a.service.tryAcquire('up', 'm').allowed, true);
    assert.equal(await a.service.reset('up:nope'), undefined);
  });

  it('reset reaches a breaker this instance only knows from the shared state', async () => {
    const bus = new FakeRedisBus(new FakeClock());
    const a = await instance(bus);
    failTimes(a.service, 'up', 'm', 2);
    await flush();
    // Not bootstrapped: it neither loaded the shared state nor heard the announcement.
    const other = new BreakerService(CONFIG, bus.store(), a.clock);
    assert.equal(other.get('up:m'), undefined);
    assert.equal((await other.reset('up:m'))?.state, 'closed');
    assert.equal(a.service.get('up:m')?.state, 'closed', 'the instance that opened it was told');
  });

  it('does not grow its map for remote closes of breakers it never had', async () => {
    const bus = new FakeRedisBus(new FakeClock());
    const a = await instance(bus);
    const b = await instance(bus);
    failTimes(a.service, 'up', 'other', 1);
    await a.service.reset('up:other');
    assert.equal(b.service.get('up:other'), undefined);
  });

  it("lengthens an open period to the upstream's Retry-After, but a Retry-After alone never opens", async () => {
    const { service } = await instance();
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
    const { service, clock } = await instance();
    failTimes(service, 'up', 'm', 2);
    clock.advance(1_000);
    const probe = await service.acquire('up', 'm');
    assert.ok(probe.allowed && probe.lease.probe);
    service.release(probe.lease); // e.g. the client went away: the probe slot is free again
    const next = await service.acquire('up', 'm');
    assert.ok(next.allowed && next.lease.probe);
    service.onSuccess(next.lease, 10);
    assert.equal(service.get('up:m')?.state, 'closed');
  });

  describe('one gateway across instances', () => {
    it('sends one probe round to a recovering upstream, whichever instance asks', async () => {
      const bus = new FakeRedisBus(new FakeClock());
      const [a, b, c] = [await instance(bus), await instance(bus), await instance(bus)];
      failTimes(a.service, 'up', 'm', 2);
      await flush();
      assert.ok([a, b, c].every((x) => x.service.isOpen('up', 'm')));
      bus.clock.advance(CONFIG.cooldownMs);
      const answers = await Promise.all([b, a, c, b].map((x) => x.service.acquire('up', 'm')));
      assert.deepEqual(answers.map((x) => x.allowed), [true, false, false, false], 'one probe (halfOpenProbes = 1) in the whole cluster');
      const probe = answers[0];
      assert.ok(probe.allowed && probe.lease.probe);
      b.service.onSuccess(probe.lease, 10);
      await flush();
      assert.ok([a, b, c].every((x) => x.service.get('up:m')?.state === 'closed'), 'the round closed it everywhere');
      assert.equal(bus.open.size + bus.permits.size, 0, 'nothing left in Redis once closed');
    });

    it('reopens everywhere with a longer cooldown after a failed probe; the next round may go to another instance', async () => {
      const bus = new FakeRedisBus(new FakeClock());
      const [a, b] = [await instance(bus), await instance(bus)];
      failTimes(a.service, 'up', 'm', 2);
      bus.clock.advance(CONFIG.cooldownMs);
      const probe = await a.service.acquire('up', 'm');
      assert.ok(probe.allowed && probe.lease.probe);
      a.service.onFailure(probe.lease, 10);
      await flush();
      assert.equal(b.service.get('up:m')?.state, 'open');
      assert.equal(b.service.retryInMs('up', 'm'), 2 * CONFIG.cooldownMs);
      assert.equal(bus.permits.size, 0, 'the new opening ended the round');
      bus.clock.advance(2 * CONFIG.cooldownMs);
      const next = await b.service.acquire('up', 'm');
      assert.ok(next.allowed && next.lease.probe);
      assert.equal((await a.service.acquire('up', 'm')).allowed, false);
    });

    it('lets another instance probe once the permit of an instance that went quiet lapses', async () => {
      const bus = new FakeRedisBus(new FakeClock());
      const [a, b] = [await instance(bus), await instance(bus)];
      failTimes(a.service, 'up', 'm', 2);
      bus.clock.advance(CONFIG.cooldownMs);
      assert.ok((await a.service.acquire('up', 'm')).allowed); // a's probe never reports (its process died)
      assert.equal((await b.service.acquire('up', 'm')).allowed, false);
      bus.clock.advance(CONFIG.probeRoundMs);
      assert.ok((await b.service.acquire('up', 'm')).allowed);
    });

    it('starts closed when the opening it would replay has ended, and open while it runs', async () => {
      const bus = new FakeRedisBus(new FakeClock());
      const a = await instance(bus);
      failTimes(a.service, 'up', 'm', 2);
      await flush();
      bus.clock.advance(CONFIG.cooldownMs - 100);
      const during = await instance(bus);
      assert.equal(during.service.get('up:m')?.state, 'open');
      assert.equal(during.service.retryInMs('up', 'm'), 100, 'the time left, not a fresh cooldown');
      bus.clock.advance(100);
      const after = await instance(bus);
      assert.equal(after.service.get('up:m'), undefined, 'an ended opening is not replayed');
      assert.equal(after.service.tryAcquire('up', 'm').allowed, true);
    });

    it('catches up on notices lost while its subscription was away', async () => {
      const bus = new FakeRedisBus(new FakeClock());
      const [a, b] = [await instance(bus), await instance(bus)];
      b.store.deaf = true;
      failTimes(a.service, 'up', 'm', 2);
      await flush();
      assert.equal(b.service.get('up:m'), undefined, 'the opening was not heard');
      await b.resync();
      assert.equal(b.service.isOpen('up', 'm'), true, 'adopted from the state in Redis');
      await a.service.reset('up:m');
      assert.equal(b.service.isOpen('up', 'm'), true, 'the close was not heard');
      await b.resync();
      assert.equal(b.service.get('up:m')?.state, 'closed', 'Redis no longer holds it: closed');
    });

    it("bounds other instances' keys of an open-ended upstream like its own", async () => {
      const bus = new FakeRedisBus(new FakeClock());
      const [a, b] = [await instance(bus, { minCalls: 5 }), await instance(bus, { minCalls: 5 })];
      for (let i = 0; i < MAX_OPEN_ENDED_BREAKERS; i++) failTimes(b.service, 'up', `model-${i}`, 1, true);
      failTimes(a.service, 'up', 'elsewhere', 5, true);
      await flush();
      assert.equal(a.service.isOpen('up', 'elsewhere', true), true);
      assert.equal(b.service.get('up:elsewhere'), undefined, 'no breaker beyond the cap');
      assert.equal(b.service.list().length, MAX_OPEN_ENDED_BREAKERS);
    });
  });

  describe('model names of an open-ended upstream', () => {
    it(`keeps at most ${MAX_OPEN_ENDED_BREAKERS} breakers with outcomes, then shares up:*`, async () => {
      const { service } = await instance(undefined, { minCalls: 5 });
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
      const { service, clock } = await instance(undefined, { minCalls: 5 });
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
      const { service } = await instance(undefined, { minCalls: 5 });
      for (let i = 0; i <= MAX_OPEN_ENDED_BREAKERS; i++) failTimes(service, 'up', `model-${i}`, 1);
      const answer = service.tryAcquire('up', `model-${MAX_OPEN_ENDED_BREAKERS}`);
      assert.ok(answer.allowed);
      assert.equal(answer.lease.key, `up:model-${MAX_OPEN_ENDED_BREAKERS}`);
    });

    it('reports an open overflow breaker to availability checks of overflowing models', async () => {
      const { service } = await instance(undefined, { minCalls: 2 });
      for (let i = 0; i < MAX_OPEN_ENDED_BREAKERS; i++) failTimes(service, 'up', `model-${i}`, 1, true);
      failTimes(service, 'up', 'x', 2, true);
      assert.equal(service.get('up:*')?.state, 'open');
      assert.equal(service.isOpen('up', 'y', true), true);
      assert.equal(service.isOpen('up', 'model-0', true), false);
    });
  });
});
