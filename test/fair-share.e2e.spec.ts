import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import Redis from 'ioredis';
import { keyDigest } from '../src/config/api-keys-file';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { chatBody, postJson } from './support/http';
import { GatewayStack, Stack, startStack, TempFile, writeUpstreamsFile } from './support/stack';
import { waitFor } from './support/wait';

const NOISY = 'sk-e2e-noisy-5d1f0a';
const LIGHT = 'sk-e2e-light-8c2b7e';
const HEAVY = 'sk-e2e-heavy-0f3a9c';

async function waiting(redis: Redis): Promise<number> {
  return redis.zcard('bulwark:inference:prioritized');
}

describe('fair share between client keys within a priority', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let file: TempFile;
  let redis: Redis;

  before(async () => {
    file = writeUpstreamsFile({
      keys: [
        { name: 'noisy', keyHash: `sha256:${keyDigest(NOISY)}`, tier: 'normal', maxQueueShare: 0.5 },
        { name: 'light', keyHash: `sha256:${keyDigest(LIGHT)}`, tier: 'normal' },
        { name: 'heavy', keyHash: `sha256:${keyDigest(HEAVY)}`, tier: 'normal', weight: 3 },
      ],
    });
    ({ simulator } = stack = await startStack({
      env: {
        API_KEYS_FILE: file.path,
        MAX_CONCURRENT_REQUESTS: '1',
        MAX_QUEUE_SIZE: '20',
        QUEUE_REJECTION_THRESHOLD: '1',
        RETRY_MAX_ATTEMPTS: '1',
      },
    }));
    redis = new Redis(stack.redis.url, { maxRetriesPerRequest: 1 });
  });

  after(async () => {
    redis?.disconnect();
    await stack?.stop();
    file?.remove();
  });

  /** Sends a request as `key`, once the previous ones are waiting, and records when it finished. */
  function queueInOrder(finished: string[]) {
    let queued = 0;
    return async (name: string, key: string, latencyMs = 30) => {
      const expected = ++queued;
      const done = postJson(`${stack.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs } }), { authorization: `Bearer ${key}` }).then((res) => {
        assert.equal(res.status, 200, res.text);
        finished.push(name);
      });
      await waitFor(`${name} to wait`, async () => (await waiting(redis)) >= expected);
      // Wrapped: an async function returning the promise itself would wait for the answer.
      return { done };
    };
  }

  it("a light key's request is served next to a noisy key's backlog, not behind it", async () => {
    simulator.resetStats();
    const finished: string[] = [];
    const blocker = postJson(`${stack.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 600 } }), { authorization: `Bearer ${NOISY}` });
    await waitFor('the blocker to run', () => simulator.stats.running === 1);
    const send = queueInOrder(finished);
    const all = [];
    for (let i = 1; i <= 5; i++) all.push((await send(`noisy${i}`, NOISY)).done);
    all.push((await send('light1', LIGHT)).done);
    await Promise.all([blocker, ...all]);
    // FIFO would serve light1 last; fair share serves it right after the noisy key's first.
    assert.deepEqual(finished, ['noisy1', 'light1', 'noisy2', 'noisy3', 'noisy4', 'noisy5']);
  });

  it('weights: a key of weight 3 gets three turns for every turn of a key of weight 1', async () => {
    const finished: string[] = [];
    const blocker = postJson(`${stack.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 600 } }), { authorization: `Bearer ${LIGHT}` });
    await waitFor('the blocker to run', () => simulator.stats.running === 1);
    const send = queueInOrder(finished);
    const all = [];
    for (let i = 1; i <= 4; i++) all.push((await send(`light${i}`, LIGHT)).done);
    for (let i = 1; i <= 6; i++) all.push((await send(`heavy${i}`, HEAVY)).done);
    await Promise.all([blocker, ...all]);
    const firstFive = finished.slice(0, 5);
    assert.equal(firstFive.filter((n) => n.startsWith('heavy')).length >= 3, true, `order: ${finished.join(',')}`);
    // Within one key, requests keep their order.
    assert.deepEqual(finished.filter((n) => n.startsWith('heavy')), ['heavy1', 'heavy2', 'heavy3', 'heavy4', 'heavy5', 'heavy6']);
    assert.deepEqual(finished.filter((n) => n.startsWith('light')), ['light1', 'light2', 'light3', 'light4']);
  });

  it('a key over its queue share is refused with 429 key_queue_share_exceeded and Retry-After; other keys still get in', async () => {
    const blocker = postJson(`${stack.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 1500 } }), { authorization: `Bearer ${LIGHT}` });
    await waitFor('the blocker to run', () => simulator.stats.running === 1);
    // noisy may hold half of MAX_QUEUE_SIZE=20 waiting.
    const send = (key: string) => postJson(`${stack.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 5 } }), { authorization: `Bearer ${key}` });
    const accepted = Array.from({ length: 10 }, () => send(NOISY));
    await waitFor('noisy to hold its share', async () => (await waiting(redis)) === 10);
    const refused = await Promise.all(Array.from({ length: 3 }, () => send(NOISY)));
    for (const r of refused) {
      assert.equal(r.status, 429, r.text);
      assert.equal(r.json.error.code, 'key_queue_share_exceeded');
      assert.equal(r.json.error.type, 'rate_limit_error');
      assert.match(r.headers.get('retry-after') ?? '', /^\d+$/);
    }
    // Another key is not crowded out: it still finds room in the queue.
    const light = send(LIGHT);
    await waitFor('light to wait too', async () => (await waiting(redis)) === 11);
    assert.equal((await light).status, 200);
    assert.deepEqual((await Promise.all(accepted)).map((r) => r.status), Array(10).fill(200));
    assert.equal((await blocker).status, 200);
  });
});

describe("a client key's concurrency cap (API_KEYS_FILE maxConcurrent), across instances", () => {
  const CAPPED = 'sk-e2e-capped-4e7d21';
  const OTHER = 'sk-e2e-other-93ab5f';
  let stack: Stack;
  let simulator: UpstreamSimulator;
  let file: TempFile;

  before(async () => {
    file = writeUpstreamsFile({
      keys: [
        { name: 'capped', keyHash: `sha256:${keyDigest(CAPPED)}`, tier: 'normal', maxConcurrent: 1 },
        { name: 'other', keyHash: `sha256:${keyDigest(OTHER)}`, tier: 'normal' },
      ],
    });
    ({ simulator } = stack = await startStack({
      gateway: false,
      env: { API_KEYS_FILE: file.path, MAX_CONCURRENT_REQUESTS: '3', MAX_QUEUE_SIZE: '20', QUEUE_REJECTION_THRESHOLD: '1', RETRY_MAX_ATTEMPTS: '1' },
    }));
  });

  after(async () => {
    await stack?.stop();
    file?.remove();
  });

  afterEach(() => stack?.stopGateways());

  it('never runs more requests of the key at once than its cap, while other keys use the free slots', async () => {
    const a = await stack.startGateway();
    const b = await stack.startGateway();
    simulator.resetStats();
    const send = (url: string, key: string, user: string) =>
      postJson(`${url}/v1/chat/completions`, chatBody({ user, x_sim: { latencyMs: 150 } }), { authorization: `Bearer ${key}` });
    const capped = Array.from({ length: 6 }, (_, i) => send((i % 2 ? a : b).url, CAPPED, 'capped'));
    await waitFor('the capped key to run', () => simulator.stats.running >= 1);
    // The other key is not held behind the capped key's backlog: the free slots serve it.
    const other = await Promise.all([send(a.url, OTHER, 'other'), send(b.url, OTHER, 'other')]);
    assert.deepEqual(other.map((r) => r.status), [200, 200]);
    const results = await Promise.all(capped);
    assert.deepEqual(results.map((r) => r.status), Array(6).fill(200));
    assert.equal(simulator.stats.requestsByUser.capped, 6);
    // Never two of the capped key's requests at once, on either instance.
    assert.equal(simulator.stats.maxInFlightByUser.capped, 1);
    assert.ok(simulator.stats.maxInFlight <= 3, `max in flight ${simulator.stats.maxInFlight}`);
    await Promise.all([a.stop('SIGKILL'), b.stop('SIGKILL')]);
  });
});
