import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/upstream/simulator/simulator';
import { GatewayProcess, startGateway } from './support/gateway-process';
import { chatBody, getJson, postJson, readSse } from './support/http';
import { startRedis, TestRedis } from './support/redis-server';
import { waitFor } from './support/wait';

describe('several instances on one Redis', () => {
  let redis: TestRedis;
  let simulator: UpstreamSimulator;
  let upstreamUrl: string;
  const gateways: GatewayProcess[] = [];
  const start = async (env: Record<string, string> = {}) => {
    const gateway = await startGateway({ env: { REDIS_URL: redis.url, UPSTREAM_URL: upstreamUrl, QUEUE_LOCK_MS: '2000', RETRY_MAX_ATTEMPTS: '1', ...env } });
    gateways.push(gateway);
    return gateway;
  };

  before(async () => {
    redis = await startRedis();
    simulator = new UpstreamSimulator({ latencyMs: 5, chunkIntervalMs: 5 });
    upstreamUrl = (await simulator.start()).baseUrl;
  });

  after(async () => {
    await Promise.all(gateways.map((g) => g.stop('SIGKILL')));
    await simulator?.stop();
    await redis?.stop();
  });

  it('relays a stream whose job runs on another instance, chunk by chunk', async () => {
    const front = await start({ WORKER_ENABLED: 'false' });
    const worker = await start();
    simulator.resetStats();
    const response = await fetch(`${front.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chatBody({ stream: true, x_sim: { chunks: 12 } })),
      signal: AbortSignal.timeout(15_000),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-upstream'), 'primary');
    const events = await readSse(response);
    assert.equal(events.at(-1), '[DONE]');
    const text = events
      .slice(0, -1)
      .map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '')
      .join('');
    assert.equal(text, Array.from({ length: 12 }, (_, i) => `word${i + 1} `).join(''));
    // The front door runs no worker (WORKER_ENABLED=false): the job ran on the other instance.
    assert.match(front.output(), /WORKER_ENABLED=false/);
    assert.equal(simulator.stats.requestsByPath['/v1/chat/completions'], 1);
    const plain = await postJson(`${front.url}/v1/chat/completions`, chatBody());
    assert.equal(plain.status, 200);
    assert.equal(plain.json.object, 'chat.completion');
    await front.stop('SIGKILL');
    await worker.stop('SIGKILL');
  });

  it('keeps MAX_CONCURRENT_REQUESTS across instances (global concurrency)', async () => {
    const a = await start({ MAX_CONCURRENT_REQUESTS: '2' });
    const b = await start({ MAX_CONCURRENT_REQUESTS: '2' });
    simulator.resetStats();
    const requests = Array.from({ length: 12 }, (_, i) => postJson(`${(i % 2 ? a : b).url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 60 } })));
    const results = await Promise.all(requests);
    assert.deepEqual(results.map((r) => r.status), Array(12).fill(200));
    assert.ok(simulator.stats.maxInFlight <= 2, `max in flight ${simulator.stats.maxInFlight}`);
    assert.equal(simulator.stats.completed, 12);
    await a.stop('SIGKILL');
    await b.stop('SIGKILL');
  });

  it('finishes a job whose worker process was killed mid-call on another instance', async () => {
    const first = await start();
    simulator.resetStats();
    const created = await postJson(`${first.url}/v1/jobs`, chatBody({ x_sim: { latencyMs: 2500 } }));
    assert.equal(created.status, 202);
    await waitFor('the upstream call to start', () => simulator.stats.running === 1);
    await first.stop('SIGKILL');
    const second = await start();
    const done = await waitFor(
      'the job to complete on the second instance',
      async () => {
        const res = await getJson(`${second.url}/v1/jobs/${created.json.id}`);
        return res.json.status === 'completed' ? res.json : undefined;
      },
      20_000,
      200,
    );
    assert.equal(done.result.object, 'chat.completion');
    // The stalled job was recovered and its upstream call repeated once.
    assert.equal(simulator.stats.requestsByPath['/v1/chat/completions'], 2);
    await second.stop('SIGKILL');
  });
});
