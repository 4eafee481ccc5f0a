import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { startRedis, TestRedis } from '../../test/support/redis-server';
import { bullPriority, INFERENCE_QUEUE } from './inference-job';
import { QueueClient, SlotStore } from './slot-store';

/** The slot scripts against a real redis-server, through the same keys the gateway uses. */
describe('SlotStore (ADMIT, COMMIT, BIND, RELEASE, FORGET, FIGURES) on a real Redis', () => {
  let server: TestRedis;
  let redis: Redis;
  let queue: Queue;
  let bullConnection: Redis;
  let store: SlotStore;
  const limits = { maxQueue: 3, maxConcurrent: 2, leaseMs: 30_000, fastLane: true, commitWindowMs: 2000, mayExist: false };
  const client = (id: string, extra: Partial<QueueClient> = {}): QueueClient => ({ id, weight: 1, maxWaiting: 0, maxRunning: 0, ...extra });

  before(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
    bullConnection = new Redis(server.url, { maxRetriesPerRequest: null });
    queue = new Queue(INFERENCE_QUEUE, { connection: bullConnection, prefix: 'bulwark' });
    const keys = queue.keys;
    store = new SlotStore(redis, {
      slots: 'bulwark:slots',
      adding: 'bulwark:slots:adding',
      instances: 'bulwark:instances',
      prioritized: keys.prioritized,
      wait: keys.wait,
      jobPrefix: queue.toKey(''),
      commit: (id) => `bulwark:jobs:commit:${id}`,
      fair: (band) => `bulwark:fair:${band}`,
      keyWaiting: 'bulwark:keys:waiting',
      jobKey: 'bulwark:keys:job',
      delayed: keys.delayed,
      keyRunning: (clientId) => `bulwark:slots:key:${clientId}`,
      priced: 'bulwark:queue:priced',
      pricedJob: 'bulwark:queue:priced:job',
    });
  });

  after(async () => {
    await queue?.close();
    bullConnection?.disconnect();
    redis?.disconnect();
    await server?.stop();
  });

  beforeEach(() => redis.flushall());

  /** Admits `id` and, when it was queued, lands its job in BullMQ (as the gateway's add does). */
  async function admitAndAdd(id: string, who = client('a'), expectedServiceMs?: number) {
    const admitted = await store.admit(id, 'normal', who, { ...limits, expectedServiceMs });
    if (admitted.kind === 'queued') await queue.add(INFERENCE_QUEUE, {}, { jobId: id, priority: bullPriority('normal', admitted.fairTag) });
    return admitted;
  }

  it('takes a free slot at once, then queues, then refuses a full queue, exactly under a burst', async () => {
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => store.admit(`r${i}`, 'normal', client('a'), limits)));
    const kinds = results.map((r) => r.kind);
    assert.equal(kinds.filter((k) => k === 'fast').length, 2);
    assert.equal(kinds.filter((k) => k === 'queued').length, 3);
    assert.equal(kinds.filter((k) => k === 'full').length, 7);
  });

  it('never lets a new request overtake one waiting at its priority', async () => {
    await store.admit('s1', 'normal', client('a'), limits);
    await store.admit('s2', 'normal', client('a'), limits);
    assert.equal((await admitAndAdd('waiting')).kind, 'queued');
    await store.release('s1', undefined, undefined, 2, limits.leaseMs);
    // A slot is free now, but someone of its priority waits: the new request queues behind it.
    assert.equal((await store.admit('late', 'normal', client('a'), limits)).kind, 'queued');
    // A higher priority has nobody ahead of it: it takes the free slot.
    assert.equal((await store.admit('urgent', 'high', client('a'), limits)).kind, 'fast');
  });

  it("refuses a key at its share of the queue while another key still gets in", async () => {
    await store.admit('s1', 'normal', client('a'), limits);
    await store.admit('s2', 'normal', client('a'), limits);
    assert.equal((await admitAndAdd('w1', client('a', { maxWaiting: 1 }))).kind, 'queued');
    assert.deepEqual(await store.admit('w2', 'normal', client('a', { maxWaiting: 1 }), limits), { kind: 'key_share', keyWaiting: 1 });
    assert.equal((await admitAndAdd('w3', client('b', { maxWaiting: 1 }))).kind, 'queued');
  });

  it('commits a landed add in its window, says late after it, and missing before the job exists', async () => {
    await store.admit('s1', 'normal', client('a'), limits);
    await store.admit('s2', 'normal', client('a'), limits);
    await store.admit('j1', 'normal', client('a'), limits);
    assert.equal(await store.commit('j1', 60_000), 'missing');
    await queue.add(INFERENCE_QUEUE, {}, { jobId: 'j1', priority: 1 });
    assert.equal(await store.commit('j1', 60_000), 'committed');
    await store.admit('j2', 'normal', client('a'), { ...limits, commitWindowMs: 1 });
    await queue.add(INFERENCE_QUEUE, {}, { jobId: 'j2', priority: 1 });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(await store.commit('j2', 60_000), 'late');
  });

  it('binds only committed jobs, and a forgotten one never runs even if its add lands later', async () => {
    await store.admit('s1', 'normal', client('a'), limits);
    await store.admit('s2', 'normal', client('a'), limits);
    await admitAndAdd('ok');
    await store.commit('ok', 60_000);
    const bound = await store.bind('ok', 'normal', 0, undefined, { clientId: 'a', maxRunning: 0, lease: 'l1', leaseMs: limits.leaseMs });
    assert.deepEqual(bound, { committed: true, originAlive: true, keyAtCap: false });
    await store.admit('told-no', 'normal', client('a'), limits);
    await store.forget('told-no');
    await queue.add(INFERENCE_QUEUE, {}, { jobId: 'told-no', priority: 1 });
    const late = await store.bind('told-no', 'normal', 0, undefined, { clientId: 'a', maxRunning: 0, lease: 'l2', leaseMs: limits.leaseMs });
    assert.equal(late.committed, false);
  });

  it("holds a job back while its key runs as many as it may", async () => {
    const capped = { clientId: 'a', maxRunning: 1, leaseMs: limits.leaseMs };
    assert.equal((await store.bind('j1', 'normal', 0, undefined, { ...capped, lease: 'l1' })).keyAtCap, false);
    assert.equal((await store.bind('j2', 'normal', 0, undefined, { ...capped, lease: 'l2' })).keyAtCap, true);
    await store.release('l1', 'bulwark:slots:key:a', undefined, 2, limits.leaseMs);
    assert.equal((await store.bind('j2', 'normal', 0, undefined, { ...capped, lease: 'l2' })).keyAtCap, false);
  });

  it('hands a released slot straight to the queue head when work waits', async () => {
    await store.admit('s1', 'normal', client('a'), limits);
    await store.admit('s2', 'normal', client('a'), limits);
    await admitAndAdd('waiting');
    assert.deepEqual(await store.release('s1', undefined, 'next', 2, limits.leaseMs), { handedOff: true, waiting: 1 });
    assert.equal(await store.claim('other', 2, limits.leaseMs), 'busy');
  });

  it('prices what waits by each request its own expected time, and forgets the price when it leaves', async () => {
    await store.admit('s1', 'normal', client('a'), limits);
    await store.admit('s2', 'normal', client('a'), limits);
    await admitAndAdd('small', client('a'), 300);
    await admitAndAdd('large', client('b'), 2700);
    await admitAndAdd('unknown', client('c'));
    let figures = await store.figures();
    assert.deepEqual(figures.priced.normal, { ms: 3000, count: 2 });
    assert.equal(figures.byPriority.normal, 3);
    await store.forget('large');
    await store.bind('small', 'normal', 0, undefined, { clientId: 'a', maxRunning: 0, lease: 'l', leaseMs: limits.leaseMs });
    figures = await store.figures();
    assert.deepEqual(figures.priced.normal, { ms: 0, count: 0 });
    assert.equal(figures.byKey.get('c'), 1);
    assert.equal(figures.byKey.has('a'), false);
  });
});
