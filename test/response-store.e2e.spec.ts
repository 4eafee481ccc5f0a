import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import Redis from 'ioredis';
import type { RedisService } from '../src/redis/redis.service';
import { ResponseStore } from '../src/responses/response-store';
import { startRedis, TestRedis } from './support/redis-server';

const TTL_MS = 60_000;

describe('ResponseStore on a real redis-server', () => {
  let redis: TestRedis;
  let client: Redis;
  let store: ResponseStore;
  const object = { id: 'resp_x', object: 'response', status: 'queued', output: [] };
  const delta = (n: number) => ({ type: 'response.output_text.delta', delta: `w${n} `, output_index: 0 });

  const withBounds = (maxEvents: number, maxEventBytes: number) => new ResponseStore({ client } as unknown as RedisService, { ttlMs: TTL_MS, maxEvents, maxEventBytes });

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    store = withBounds(1000, 1_000_000);
  });

  beforeEach(() => client.flushall());

  after(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  it('numbers events in Redis, gapless across runs, and fences out a run that another has replaced', async () => {
    assert.equal(await store.create('resp_x', 'alice', object, { type: 'response.created', response: object }, 0), true);
    assert.equal(await store.create('resp_x', 'alice', object, undefined, 0), false, 'an id is created once');
    assert.deepEqual(await store.start('resp_x', 'run-1', 0), { before: 'queued', stage: 0 });
    assert.equal(await store.append('resp_x', 'run-1', { type: 'response.in_progress' }, 1), 1);
    assert.equal(await store.append('resp_x', 'run-1', delta(1), 2), 2);
    // A second run (the first one's instance stalled) takes over where the log ends.
    assert.deepEqual(await store.start('resp_x', 'run-2', 0), { before: 'in_progress', stage: 2 });
    assert.equal(await store.append('resp_x', 'run-1', delta(2), 2), undefined, 'the replaced run may no longer write');
    assert.equal(await store.finish('resp_x', 'run-1', 'completed', object), 'fenced');
    assert.equal(await store.append('resp_x', 'run-2', delta(3), 2), 3);
    assert.equal(await store.finish('resp_x', 'run-2', 'failed', { ...object, status: 'failed' }, { type: 'response.failed' }), 'ok');
    assert.equal(await store.finish('resp_x', '*', 'cancelled', object, { type: 'error' }), 'failed', 'a final response stays as it ended');

    const { events, oldestKept } = await store.eventsAfter('resp_x', -1, 100);
    assert.equal(oldestKept, 0);
    assert.deepEqual(events.map((e) => [e.sequence, e.type]), [[0, 'response.created'], [1, 'response.in_progress'], [2, 'response.output_text.delta'], [3, 'response.output_text.delta'], [4, 'response.failed']]);
    for (const e of events) assert.equal((JSON.parse(e.data) as { sequence_number: number }).sequence_number, e.sequence);
    assert.deepEqual((await store.eventsAfter('resp_x', 2, 100)).events.map((e) => e.sequence), [3, 4]);
    assert.deepEqual((await store.get('resp_x'))?.status, 'failed');
  });

  it('counts responses by status across transitions, once each', async () => {
    await store.create('resp_a', 'alice', object, undefined, 0);
    await store.create('resp_b', 'alice', object, undefined, 0);
    await store.create('resp_c', 'alice', object, undefined, 0);
    await store.start('resp_a', 'r', 0);
    await store.finish('resp_a', 'r', 'completed', object);
    await store.finish('resp_a', '*', 'cancelled', object);
    await store.finish('resp_b', '*', 'cancelled', object);
    await store.discard('resp_c');
    assert.deepEqual(await store.counts(), { queued: 0, in_progress: 0, completed: 1, failed: 0, cancelled: 1, incomplete: 0 });
    assert.equal(await store.get('resp_c'), undefined);
    await store.create('resp_d', 'alice', object, undefined, 0);
    await store.create('resp_e', 'alice', object, undefined, 0);
    await store.start('resp_e', 'r', 0);
    assert.deepEqual(await store.counts(), { queued: 1, in_progress: 1, completed: 1, failed: 0, cancelled: 1, incomplete: 0 });
    // A record that expires unseen (its job lost) stops counting by itself.
    await client.pexpire('bulwark:resp:resp_e', 1);
    await client.zadd('bulwark:resp:live:in_progress', 1, 'bulwark:resp:resp_e');
    assert.equal((await store.counts()).in_progress, 0);
  });

  it('keeps the log within its event and byte bounds, oldest first, and says what it no longer holds', async () => {
    const bounded = withBounds(10, 1_000_000);
    await bounded.create('resp_n', 'alice', object, { type: 'response.created' }, 0);
    await bounded.start('resp_n', 'r', 0);
    for (let i = 1; i <= 24; i++) await bounded.append('resp_n', 'r', delta(i), 2);
    const kept = await bounded.eventsAfter('resp_n', 14, 100);
    assert.equal(kept.oldestKept, 15);
    assert.deepEqual(kept.events.map((e) => e.sequence), [15, 16, 17, 18, 19, 20, 21, 22, 23, 24]);

    const small = withBounds(1000, 1024);
    await small.create('resp_b', 'alice', object, { type: 'response.created' }, 0);
    await small.start('resp_b', 'r', 0);
    for (let i = 1; i <= 40; i++) await small.append('resp_b', 'r', delta(i), 2);
    const all = await small.eventsAfter('resp_b', -1, 1000);
    const bytes = all.events.reduce((sum, e) => sum + Buffer.byteLength(e.data), 0);
    assert.ok(bytes <= 1024, `${bytes} bytes kept`);
    assert.equal(all.events[all.events.length - 1].sequence, 40, 'the newest are kept');
    assert.equal(all.oldestKept, all.events[0].sequence);
    assert.ok(all.oldestKept! > 0);
  });

  it('expires a record and its log after the retention, and never before the deadline of its run', async () => {
    await store.create('resp_t', 'alice', object, { type: 'response.created' }, 0);
    const ttl = await client.pttl('bulwark:resp:resp_t');
    assert.ok(ttl > 0 && ttl <= TTL_MS, String(ttl));
    assert.ok((await client.pttl('bulwark:resp:resp_t:events')) > 0);
    await store.start('resp_t', 'r', 10 * TTL_MS);
    assert.ok((await client.pttl('bulwark:resp:resp_t')) > TTL_MS, 'a run longer than the retention keeps its record');
  });
});
