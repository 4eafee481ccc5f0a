import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, finishOrderSender, expectErrorShape, getJson, postJson, send } from './support/http';
import { GatewayStack, startStack } from './support/stack';
import { waitFor } from './support/wait';

async function waitingCount(gateway: GatewayProcess): Promise<number> {
  return (await getJson(`${gateway.url}/v1/queue/stats`)).json.waiting as number;
}

describe('queue: priority, concurrency, admission', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;

  before(async () => {
    ({ simulator, gateway } = stack = await startStack({
      env: { MAX_CONCURRENT_REQUESTS: '1', MAX_QUEUE_SIZE: '8', QUEUE_REJECTION_THRESHOLD: '1', RETRY_MAX_ATTEMPTS: '1' },
    }));
  });

  // A busy queue lowers the health score; each test starts from a healthy strategy (it recovers with hysteresis).
  beforeEach(async () => {
    await waitFor('a healthy strategy', async () => (await getJson(`${gateway.url}/v1/queue/stats`)).headers.get('x-degradation-level') === 'healthy', 20_000, 200);
  });

  after(() => stack?.stop());

  it('starts queued high-priority requests before earlier low ones (concurrency 1)', async () => {
    simulator.resetStats();
    const finished: string[] = [];
    const send = finishOrderSender(gateway.url, finished);
    const blocker = send('blocker', 'normal', 1500);
    await waitFor('the blocker to run', () => simulator.stats.running === 1);
    // Queue them one at a time so their arrival order is known (FIFO within a priority is asserted too).
    const queued: Promise<void>[] = [];
    for (const [name, priority] of [['low1', 'low'], ['low2', 'low'], ['low3', 'low'], ['high1', 'high'], ['high2', 'high'], ['high3', 'high']]) {
      queued.push(send(name, priority, 5));
      const expected = queued.length;
      await waitFor(`${name} to queue`, async () => (await waitingCount(gateway)) === expected);
    }
    await Promise.all([blocker, ...queued]);
    assert.deepEqual(finished, ['blocker', 'high1', 'high2', 'high3', 'low1', 'low2', 'low3']);
  });

  it('never runs more upstream calls at once than MAX_CONCURRENT_REQUESTS', async () => {
    // The gateway's own upstream probe (GET /v1/models) may still be on its way from its start.
    await waitFor('the startup probe to end', () => simulator.stats.inFlight === 0);
    simulator.resetStats();
    const results = await Promise.all(Array.from({ length: 8 }, () => postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 40 } }))));
    assert.deepEqual(results.map((r) => r.status), Array(8).fill(200));
    assert.equal(simulator.stats.maxInFlight, 1);
    assert.equal(simulator.stats.completed - (simulator.stats.requestsByPath['/v1/models'] ?? 0), 8);
  });

  it('refuses with 503 queue_full, Retry-After and x-should-retry when the queue is full', async () => {
    simulator.resetStats();
    const blocker = postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 1000 } }));
    await waitFor('the blocker to run', () => simulator.stats.running === 1);
    const queued = Array.from({ length: 8 }, () => postJson(`${gateway.url}/v1/chat/completions`, chatBody()));
    await waitFor('the queue to fill', async () => (await waitingCount(gateway)) === 8);
    const refused = await postJson(`${gateway.url}/v1/chat/completions`, chatBody());
    assert.equal(refused.status, 503);
    const error = expectErrorShape(refused.json);
    assert.equal(error.type, 'overloaded_error');
    assert.equal(error.code, 'queue_full');
    assert.match(refused.headers.get('retry-after') ?? '', /^\d+$/);
    assert.equal(refused.headers.get('x-should-retry'), 'true');
    const all = await Promise.all([blocker, ...queued]);
    assert.ok(all.every((r) => r.status === 200));
  });

  it('drops a waiting request whose caller disconnects: it never reaches the upstream', async () => {
    simulator.resetStats();
    const blocker = postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 600 } }));
    await waitFor('the blocker to run', () => simulator.stats.running === 1);
    const controller = new AbortController();
    const abandoned = send(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      body: chatBody({ x_sim: { fault: 'error', status: 500 } }),
      signal: controller.signal,
    }).catch((error: Error) => error);
    await waitFor('the second request to queue', async () => (await waitingCount(gateway)) === 1);
    controller.abort();
    assert.ok((await abandoned) instanceof Error);
    await waitFor('the queue to empty', async () => (await waitingCount(gateway)) === 0);
    assert.equal((await blocker).status, 200);
    // A later request proves the worker moved on past where the abandoned one was.
    assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, chatBody())).status, 200);
    assert.equal(simulator.stats.requestsByPath['/v1/chat/completions'], 2);
  });

  it('answers 504 queue_timeout when the deadline passes while queued, without calling the upstream', async () => {
    simulator.resetStats();
    const blocker = postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 1200 } }));
    await waitFor('the blocker to run', () => simulator.stats.running === 1);
    const late = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), { 'x-request-timeout-ms': '1100' });
    assert.equal(late.status, 504);
    assert.equal(expectErrorShape(late.json).code, 'queue_timeout');
    assert.equal((await blocker).status, 200);
    assert.equal(simulator.stats.requestsByPath['/v1/chat/completions'], 1);
  });

  it('sets X-Queue-Wait-Ms on answers', async () => {
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody());
    assert.match(res.headers.get('x-queue-wait-ms') ?? '', /^\d+$/);
  });
});
