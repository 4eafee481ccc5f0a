import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import Redis from 'ioredis';
import { BATCH_KEYS, BatchStore, QueueCoreKeys } from '../src/batch/batch-store';
import { FILE_KEYS } from '../src/files/file-store';
import type { RedisService } from '../src/redis/redis.service';
import { startRedis, TestRedis } from './support/redis-server';

const CORE: QueueCoreKeys = {
  slots: 'bulwark:slots',
  adding: 'bulwark:slots:adding',
  prioritized: 'bulwark:inference:prioritized',
  wait: 'bulwark:inference:wait',
  delayed: 'bulwark:inference:delayed',
};
const LIMITS = { maxConcurrent: 2, slotLeaseMs: 60_000, headroom: 0, lineLeaseMs: 60_000, maxStarts: 2 };

/** The batch runner's Redis steps, against a real redis-server: what a claim may take, and when it must not. */
describe('BatchStore scripts', () => {
  let redis: TestRedis;
  let client: Redis;
  let store: BatchStore;

  async function addBatch(id: string, lines: number, fields: Record<string, string | number> = {}): Promise<void> {
    await client.rpush(FILE_KEYS.lines(`file-${id}`), ...Array.from({ length: lines }, (_, i) => `{"custom_id":"${id}-${i}"}\n`));
    await store.create(id, 'owner', { endpoint: '/v1/chat/completions', input_file_id: `file-${id}`, created_at: 1, expires_at_ms: Date.now() + 60_000, total: lines, ...fields }, Date.now());
  }

  const claim = (limits: Partial<typeof LIMITS> = {}, instance = 'instance-1') => store.claim(CORE, instance, `lease-${Math.random()}`, { ...LIMITS, ...limits });

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
    store = new BatchStore({ client } as unknown as RedisService);
  });
  beforeEach(() => client.flushall());
  after(async () => {
    client.disconnect();
    await redis?.stop();
  });

  it('takes idle slots, one line each in order, up to the global bound', async () => {
    await addBatch('a', 5);
    const first = await claim();
    const second = await claim();
    assert.ok(first.kind === 'line' && second.kind === 'line');
    assert.deepEqual([first.claimed.index, second.claimed.index], [0, 1]);
    assert.equal(first.claimed.line, '{"custom_id":"a-0"}\n');
    assert.equal(await client.zcard(CORE.slots), 2);
    assert.equal((await claim()).kind, 'none');
  });

  it('leaves the slot to interactive work that waits, is put back, or is on its way into the queue', async () => {
    await addBatch('a', 5);
    await client.zadd(CORE.prioritized, 3 * 2 ** 32, 'job-low');
    assert.equal((await claim()).kind, 'interactive_waits');
    await client.del(CORE.prioritized);
    await client.lpush(CORE.wait, 'job');
    assert.equal((await claim()).kind, 'interactive_waits');
    await client.del(CORE.wait);
    await client.zadd(CORE.adding, 3e13 + Date.now(), 'job-adding');
    assert.equal((await claim()).kind, 'interactive_waits');
    await client.del(CORE.adding);
    await client.zadd(CORE.delayed, (Date.now() - 10) * 4096, 'job-put-back');
    assert.equal((await claim()).kind, 'interactive_waits');
    await client.del(CORE.delayed);
    assert.equal(await client.zcard(CORE.slots), 0);
    assert.equal((await claim()).kind, 'line');
  });

  it('leaves the configured headroom free', async () => {
    await addBatch('a', 5);
    assert.equal((await claim({ maxConcurrent: 3, headroom: 1 })).kind, 'line');
    assert.equal((await claim({ maxConcurrent: 3, headroom: 1 })).kind, 'line');
    assert.equal((await claim({ maxConcurrent: 3, headroom: 1 })).kind, 'none');
  });

  it('starts a line again when its lease lapsed, and gives it up after the most starts', async () => {
    await addBatch('a', 1);
    const first = await claim({ lineLeaseMs: 1, maxConcurrent: 10 });
    assert.ok(first.kind === 'line' && first.claimed.starts === 1);
    await new Promise((r) => setTimeout(r, 5));
    const again = await claim({ lineLeaseMs: 1, maxConcurrent: 10 });
    assert.ok(again.kind === 'line' && again.claimed.index === 0 && again.claimed.starts === 2);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal((await claim({ maxConcurrent: 10 })).kind, 'none');
    assert.equal(await client.hget(BATCH_KEYS.results('a'), '0'), 'x');
    assert.equal(await client.hget(BATCH_KEYS.batch('a'), 'failed'), '1');
  });

  it('records a line once, and no longer once the batch is sealed', async () => {
    await addBatch('a', 2);
    await claim();
    assert.deepEqual(await store.record('a', 0, 'o{}', 'completed'), { recorded: true, done: 1, total: 2 });
    assert.equal((await store.record('a', 0, 'o{}', 'completed')).recorded, false);
    assert.equal(await store.seal('a', 'f1', 10_000), undefined, 'a line is still to run');
    await store.record('a', 1, 'e{}', 'failed');
    assert.equal(await store.seal('a', 'f1', 10_000), 'completed');
    assert.equal(await store.seal('a', 'f2', 10_000), undefined, 'the first finalizer holds it');
    assert.equal((await store.record('a', 1, 'o{}', 'completed')).recorded, false);
    assert.equal(await store.end('a', 'f2', 1, {}, 0), false);
    assert.equal(await store.end('a', 'f1', 1, { output: 'file-out' }, 0), true);
    const batch = await store.get('a');
    assert.equal(batch?.status, 'completed');
    assert.equal(batch?.output_file_id, 'file-out');
    assert.equal(await client.zcard(BATCH_KEYS.active), 0);
    assert.deepEqual(await store.countsByStatus(), { in_progress: 0, finalizing: 0, completed: 1 });
  });

  it('starts no line of a cancelled batch, and ends it once its running lines are done', async () => {
    await addBatch('a', 5);
    await addBatch('b', 1);
    const running = await claim();
    assert.ok(running.kind === 'line' && running.claimed.batchId === 'a');
    assert.equal(await store.cancel('a', 1), 'in_progress');
    const next = await claim();
    assert.ok(next.kind === 'line' && next.claimed.batchId === 'b', 'the cancelled batch is skipped');
    assert.equal(await store.seal('a', 'f', 10_000), undefined, 'a line still runs');
    await store.record('a', 0, 'o{}', 'completed');
    assert.equal(await store.seal('a', 'f', 10_000), 'cancelled');
  });

  it('picks the line started last to stop, only while every slot is taken and the job still waits', async () => {
    await addBatch('a', 5);
    const older = await claim({}, 'instance-1');
    await new Promise((r) => setTimeout(r, 2));
    const younger = await claim({}, 'instance-2');
    assert.ok(older.kind === 'line' && younger.kind === 'line');
    assert.equal(await store.preempt(CORE, 2, 'job-high'), undefined, 'the job does not wait (any more)');
    await client.zadd(CORE.prioritized, 2 ** 32, 'job-high');
    assert.equal(await store.preempt(CORE, 3, 'job-high'), undefined, 'a slot is free for it');
    assert.deepEqual(await store.preempt(CORE, 2, 'job-high'), { instanceId: 'instance-2', slotLease: younger.claimed.slotLease });
    // The slot has not been given back yet: the next pick is the other line, never the same one twice.
    assert.deepEqual(await store.preempt(CORE, 2, 'job-high'), { instanceId: 'instance-1', slotLease: older.claimed.slotLease });
    assert.equal(await store.preempt(CORE, 2, 'job-high'), undefined);
    // A stopped line runs again later, and the stop does not count as one of its starts.
    await store.handBack([['a', younger.claimed.index]], true);
    await client.del(CORE.prioritized, CORE.slots);
    const again = await claim();
    assert.ok(again.kind === 'line' && again.claimed.index === younger.claimed.index && again.claimed.starts === 1);
  });

  it('starts no line past the window, and ends the batch expired', async () => {
    await addBatch('a', 3, { expires_at_ms: Date.now() - 1 });
    assert.equal((await claim()).kind, 'none');
    assert.equal(await store.seal('a', 'f', 10_000), 'expired');
  });
});
