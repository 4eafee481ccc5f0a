import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import { SystemClock } from '../src/common/clock';
import { UpstreamLeases, UpstreamPermit } from '../src/upstream/upstream-leases.service';
import { UpstreamRegistry } from '../src/upstream/upstream-registry';
import type { UpstreamDefinition } from '../src/upstream/upstream.types';
import { ClusterMember, clusterMember } from './support/cluster';
import { startRedis, TestRedis } from './support/redis-server';
import { waitFor } from './support/wait';

const CAPPED: UpstreamDefinition = { name: 'capped', baseUrl: 'http://127.0.0.1:1/v1', models: ['m'], weight: 1, maxConcurrency: 2 };

describe('upstream leases on a real Redis: two instances share one cap; a dead instance frees it', () => {
  let redis: TestRedis;
  const members: ClusterMember[] = [];
  const connections = new Map<UpstreamLeases, ClusterMember>();

  /** One instance's lease keeper, as the gateway builds it, on its own cluster member (one subscriber, one lease loop). */
  async function instance(): Promise<UpstreamLeases> {
    const member = await clusterMember(redis.url);
    members.push(member);
    const registry = new UpstreamRegistry({ upstreams: [CAPPED], fallbacks: {} });
    const leases = new UpstreamLeases(member.redis, registry, { routing: 'least-loaded' }, new SystemClock(), member.leases, member.signals);
    await leases.onApplicationBootstrap();
    connections.set(leases, member);
    return leases;
  }

  before(async () => {
    Logger.overrideLogger(false);
    redis = await startRedis();
  });

  after(async () => {
    await Promise.all(members.map((m) => m.close()));
    await redis?.stop();
  });

  it('grants the cap once across instances and wakes a waiter when a permit is released', async () => {
    const a = await instance();
    const b = await instance();
    const held: UpstreamPermit[] = [];
    for (const leases of [a, b]) held.push((await leases.tryAcquire(CAPPED)) as UpstreamPermit);
    assert.ok(held.every(Boolean));
    assert.equal(await a.tryAcquire(CAPPED), undefined, 'a third permit, from either instance, is refused');
    assert.equal(await b.tryAcquire(CAPPED), undefined);
    await a.refresh();
    assert.equal(a.inFlight('capped'), 2, 'both instances count');

    // b waits; a's release wakes it (through Redis pub/sub or the poll), and it gets the permit.
    const waited = b.waitForPermit([CAPPED], 'm', new AbortController().signal, Date.now() + 5000);
    held[0].release();
    await waited;
    const next = await waitFor('a permit for b', () => b.tryAcquire(CAPPED));
    assert.ok(next);

    next.release();
    held[1].release();
  });

  it("a crashed instance's leases lapse within seconds", async () => {
    const holder = await instance();
    const other = await instance();
    assert.ok(await holder.tryAcquire(CAPPED));
    assert.ok(await holder.tryAcquire(CAPPED));
    assert.equal(await other.tryAcquire(CAPPED), undefined);
    // The holder vanishes from Redis: its leases are neither renewed nor released.
    const dead = connections.get(holder)!.redis;
    dead.release(dead.client);
    const permit = await waitFor('the dead instance\'s leases to lapse', () => other.tryAcquire(CAPPED), 10_000, 200);
    assert.ok(permit);
    permit.release();
  });
});
