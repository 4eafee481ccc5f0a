import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type Redis from 'ioredis';
import { ClusterMember, clusterMember } from '../../test/support/cluster';
import { startMonitor } from '../../test/support/redis-monitor';
import { startRedis, TestRedis } from '../../test/support/redis-server';
import { waitFor } from '../../test/support/wait';
import { HEARTBEAT_KEY } from './lease-scripts';

const SLOTS = 'bulwark:slots';
const KEY_SET = 'bulwark:slots:key:client-1';
const PERMITS = 'bulwark:upstream-leases:up-1';
const LAPSING = 'bulwark:slots:lapsing';

describe('ClusterLeases on a real redis-server', () => {
  let redis: TestRedis;
  const members: ClusterMember[] = [];
  let probe: ClusterMember;

  async function member(options: { lockMs?: number; renewing?: boolean } = {}): Promise<ClusterMember> {
    const m = await clusterMember(redis.url, options);
    members.push(m);
    return m;
  }

  /** Redis time in ms: the clock every lease is stamped with. */
  async function redisNow(client: Redis): Promise<number> {
    const [seconds, micros] = await client.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  /** Whether `member` is live in `set` by Redis time. */
  async function live(set: string, member: string): Promise<boolean> {
    const score = await probe.redis.client.zscore(set, member);
    return score !== null && Number(score) > (await redisNow(probe.redis.client));
  }

  before(async () => {
    redis = await startRedis();
    probe = await member({ renewing: false });
  });

  after(async () => {
    await Promise.all(members.map((m) => m.close()));
    await redis?.stop();
  });

  it('renews the heartbeat, slots, a key\'s running set and upstream permits in one round trip', async () => {
    const m = await member({ lockMs: 2_000, renewing: false });
    const slots = m.leases.group({ name: 'slots', ttlMs: 2_000, reassert: true });
    const permits = m.leases.group({ name: 'upstream permits', ttlMs: 5_000, reassert: false, setTtlMs: 20_000 });
    const slot = slots.newMember();
    const permit = permits.newMember();
    slots.hold(slot, SLOTS);
    assert.equal(slots.addSet(slot, KEY_SET), true);
    // A permit is taken by its owner's acquire script; the renewal only extends it.
    await m.redis.client.zadd(PERMITS, (await redisNow(m.redis.client)) + 100, permit);
    permits.hold(permit, PERMITS);
    await m.leases.renew(); // loads the script, so the renewal watched below is one call

    const startedAt = await redisNow(m.redis.client);
    const monitor = await startMonitor(redis.url);
    const localPort = (m.redis.client as unknown as { stream: { localPort: number } }).stream.localPort;
    const sent: string[] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source.endsWith(`:${localPort}`)) sent.push(args[0].toLowerCase());
      if (args[0].toLowerCase() === 'echo' && args[1] === 'watched') sent.push('end');
    });
    try {
      await m.leases.renew();
      await probe.redis.client.echo('watched');
      await waitFor('the watch to end', () => sent.includes('end') || undefined);
    } finally {
      monitor.disconnect();
    }
    assert.deepEqual(sent, ['evalsha', 'end'], 'one command from the renewing instance');

    const score = async (set: string, member: string) => Number(await probe.redis.client.zscore(set, member));
    assert.ok((await score(SLOTS, slot)) >= startedAt + 2_000, 'the slot lease runs QUEUE_LOCK_MS from the renewal');
    assert.ok((await score(KEY_SET, slot)) >= startedAt + 2_000, "and so does its place in its key's set");
    assert.ok((await score(PERMITS, permit)) >= startedAt + 5_000, 'the permit runs its own TTL');
    assert.ok((await score(HEARTBEAT_KEY, m.identity.id)) >= startedAt + 2_000, 'the heartbeat is renewed with them');
    assert.ok((await probe.redis.client.pttl(PERMITS)) > 5_000, 'the permit set outlives its leases');
  });

  it("renewal keeps a lease past its life while a stopped renewer's leases and heartbeat lapse", async () => {
    const keeper = await member({ lockMs: 600 });
    const stopped = await member({ lockMs: 600 });
    const kept = keeper.leases.group({ name: 'slots', ttlMs: 600, reassert: true });
    const lost = stopped.leases.group({ name: 'slots', ttlMs: 600, reassert: true });
    kept.hold('kept-lease', LAPSING);
    lost.hold('lost-lease', LAPSING);
    await waitFor('both leases written by their loops', async () => ((await live(LAPSING, 'kept-lease')) && (await live(LAPSING, 'lost-lease'))) || undefined);

    stopped.leases.stop();
    await waitFor('the stopped renewer\'s lease to lapse', async () => !(await live(LAPSING, 'lost-lease')) || undefined);
    await waitFor('its heartbeat to lapse', async () => !(await live(HEARTBEAT_KEY, stopped.identity.id)) || undefined);
    assert.equal(await live(LAPSING, 'kept-lease'), true, 'the renewed lease is still live');
    assert.equal(await live(HEARTBEAT_KEY, keeper.identity.id), true, 'and so is its heartbeat');
    const [count] = await probe.leases.countLive([LAPSING]);
    assert.equal(count, 1, 'live leases are counted by Redis time');
  });

  it('writes back a slot lease that lapsed while its work runs, but never a permit that is gone', async () => {
    const m = await member({ renewing: false });
    const slots = m.leases.group({ name: 'slots', ttlMs: 5_000, reassert: true });
    const permits = m.leases.group({ name: 'upstream permits', ttlMs: 5_000, reassert: false });
    slots.hold('paused-slot', SLOTS);
    permits.hold('gone-permit', PERMITS);
    await m.leases.renew();
    assert.equal(await live(SLOTS, 'paused-slot'), true);
    assert.equal(await probe.redis.client.zscore(PERMITS, 'gone-permit'), null);
  });

  it('calls every renewal listener on each tick, a failing one included', async () => {
    const m = await member({ lockMs: 600 });
    let ticks = 0;
    m.leases.onRenew(() => {
      throw new Error('a broken listener');
    });
    m.leases.onRenew(() => Promise.reject(new Error('a broken async listener')));
    m.leases.onRenew(() => void ticks++);
    await waitFor('two ticks', () => ticks >= 2 || undefined);
  });

  it('a clean shutdown forgets the heartbeat and the leases at once', async () => {
    const m = await member({ lockMs: 60_000 });
    const slots = m.leases.group({ name: 'slots', ttlMs: 60_000, reassert: true });
    slots.hold('leaving-slot', SLOTS, KEY_SET);
    await m.leases.renew();
    assert.equal(await live(SLOTS, 'leaving-slot'), true);
    assert.equal(await live(HEARTBEAT_KEY, m.identity.id), true);
    await m.leases.beforeApplicationShutdown();
    assert.equal(await probe.redis.client.zscore(SLOTS, 'leaving-slot'), null);
    assert.equal(await probe.redis.client.zscore(KEY_SET, 'leaving-slot'), null);
    assert.equal(await probe.redis.client.zscore(HEARTBEAT_KEY, m.identity.id), null);
  });
});
