import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, expectErrorShape, getJson, postJson } from './support/http';
import { TestRedis } from './support/redis-server';
import { GatewayStack, startStack } from './support/stack';
import { waitFor } from './support/wait';

describe('durability: Redis restarts', () => {
  let stack: GatewayStack;
  let redis: TestRedis;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;

  before(async () => {
    ({ redis, simulator, gateway } = stack = await startStack({ simulator: { latencyMs: 5 }, env: { MAX_CONCURRENT_REQUESTS: '1', QUEUE_LOCK_MS: '2000' } }));
  });

  after(() => stack?.stop('SIGKILL'));

  it('fails closed while Redis is away, keeps health up, and finishes an accepted job once Redis is back', async () => {
    const blocker = await postJson(`${gateway.url}/v1/jobs`, chatBody({ x_sim: { latencyMs: 1000 } }));
    await waitFor('the blocker to run', () => simulator.stats.running === 1);
    const queued = await postJson(`${gateway.url}/v1/jobs`, chatBody());
    assert.equal(queued.status, 202);
    assert.equal((await getJson(`${gateway.url}/v1/jobs/${queued.json.id}`)).json.status, 'queued');

    await redis.down();
    // Redis is gone: new work is refused with the contract's 503, health still answers.
    const refused = await waitFor('a refusal while Redis is away', async () => {
      const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), {}, 10_000);
      return res.status === 503 ? res : undefined;
    });
    assert.equal(expectErrorShape(refused.json).type, 'overloaded_error');
    assert.ok(refused.headers.get('retry-after'));
    assert.equal((await getJson(`${gateway.url}/health/live`)).status, 200);
    assert.equal((await getJson(`${gateway.url}/health/ready`)).status, 503);

    await redis.up();
    // The queued job was in the append-only file: it runs once Redis is back.
    const done = await waitFor(
      'the queued job to complete',
      async () => {
        const res = await getJson(`${gateway.url}/v1/jobs/${queued.json.id}`);
        return res.json?.status === 'completed' ? res.json : undefined;
      },
      30_000,
      200,
    );
    assert.equal(done.result.object, 'chat.completion');
    await waitFor('the blocker to finish', async () => ['completed', 'failed'].includes((await getJson(`${gateway.url}/v1/jobs/${blocker.json.id}`)).json?.status), 30_000, 200);
    assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, chatBody())).status, 200);
  });
});
