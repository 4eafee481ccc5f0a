import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import Redis from 'ioredis';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, finishOrderSender, getJson, postJson } from './support/http';
import { Stack, startStack } from './support/stack';
import { startRedisProxy } from './support/redis-proxy';
import { waitFor } from './support/wait';

/** What waits in the shared queue right now, read from Redis itself (BullMQ's own structures). */
async function waitingInRedis(redis: Redis): Promise<number> {
  const [prioritized, wait] = await Promise.all([redis.zcard('bulwark:inference:prioritized'), redis.llen('bulwark:inference:wait')]);
  return prioritized + wait;
}

async function jobStatus(gateway: GatewayProcess, id: string): Promise<string> {
  return (await getJson(`${gateway.url}/v1/jobs/${id}`)).json.status as string;
}

describe('queue core: exact bounds across instances, fast lane, leases, hand-back', () => {
  let stack: Stack;
  let simulator: UpstreamSimulator;
  let redis: Redis;

  before(async () => {
    ({ simulator } = stack = await startStack({
      gateway: false,
      env: { RETRY_MAX_ATTEMPTS: '1', QUEUE_LOCK_MS: '2000', QUEUE_REJECTION_THRESHOLD: '1', ABANDONED_REJECTION_THRESHOLD: '1' },
    }));
    redis = new Redis(stack.redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  });

  after(async () => {
    redis?.disconnect();
    await stack?.stop('SIGKILL');
  });

  afterEach(() => stack?.stopGateways());

  it('three instances under 150 clients: the queue never exceeds MAX_QUEUE_SIZE, the upstream never sees more than MAX_CONCURRENT_REQUESTS, every request is answered within its deadline', async () => {
    const env = { MAX_QUEUE_SIZE: '30', MAX_CONCURRENT_REQUESTS: '4', REQUEST_TIMEOUT_MS: '4000' };
    const gateways = await Promise.all([stack.startGateway(env), stack.startGateway(env), stack.startGateway(env)]);
    // The gateways' own upstream probes (GET /v1/models) may still be on their way from their start.
    await waitFor('the startup probes to end', () => simulator.stats.inFlight === 0);
    simulator.resetStats();
    let maxWaiting = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxWaiting = Math.max(maxWaiting, await waitingInRedis(redis));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const results = await Promise.all(
      Array.from({ length: 150 }, (_, i) =>
        // The client's own timeout is generous: a request that outlived the gateway's deadline would fail it.
        postJson(`${gateways[i % 3].url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 80 } }), {}, 10_000),
      ),
    );
    sampling = false;
    await sampler;
    assert.ok(maxWaiting <= 30, `waiting reached ${maxWaiting}`);
    assert.ok(maxWaiting > 0, 'the load did make requests wait');
    assert.ok(simulator.stats.maxInFlight <= 4, `upstream concurrency reached ${simulator.stats.maxInFlight}`);
    const statuses = new Map<string, number>();
    for (const r of results) {
      const key = r.status === 200 ? '200' : `${r.status} ${r.json?.error?.code}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      assert.ok([200, 503, 504].includes(r.status), `unexpected ${r.status}: ${r.text}`);
    }
    assert.ok((statuses.get('200') ?? 0) > 0, `nothing served: ${JSON.stringify([...statuses])}`);
    // Every upstream call that completed was answered 200 (the gateways' own /v1/models probes aside).
    assert.equal(simulator.stats.completed - (simulator.stats.requestsByPath['/v1/models'] ?? 0), statuses.get('200'));
    await Promise.all(gateways.map((g) => g.stop('SIGKILL')));
  });

  it('the fast lane never overtakes: a new request waits behind a waiting one of its priority', async () => {
    const gateway = await stack.startGateway({ MAX_CONCURRENT_REQUESTS: '1' });
    simulator.resetStats();
    const finished: string[] = [];
    const send = finishOrderSender(gateway.url, finished);
    const blocker = send('blocker', 'normal', 700);
    await waitFor('the blocker to run', () => simulator.stats.running === 1);
    const low = send('waiting-low', 'low', 20);
    const normal = send('waiting-normal', 'normal', 20);
    await waitFor('both to wait', async () => (await waitingInRedis(redis)) === 2);
    const late = send('new-normal', 'normal', 20);
    await Promise.all([blocker, low, normal, late]);
    assert.deepEqual(finished, ['blocker', 'waiting-normal', 'new-normal', 'waiting-low']);
    await gateway.stop('SIGKILL');
  });

  it('answers queue_timeout exactly for the requests whose deadline passed before the upstream was called', async () => {
    const gateway = await stack.startGateway({ MAX_CONCURRENT_REQUESTS: '3', MAX_QUEUE_SIZE: '20' });
    simulator.resetStats();
    const results = await Promise.all(
      Array.from({ length: 12 }, () =>
        postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 1500 } }), { 'x-request-timeout-ms': '2000' }),
      ),
    );
    // Three slots, 1.5 s calls, 2 s deadlines: the first round answers, the second is cut off upstream
    // (request_timeout), and whatever is still queued at 2 s never reaches the upstream (queue_timeout).
    const codes = results.map((r) => (r.status === 200 ? 'ok' : r.json.error.code));
    const called = simulator.stats.requestsByPath['/v1/chat/completions'] ?? 0;
    const count = (code: string) => codes.filter((c) => c === code).length;
    const notCalled = count('queue_timeout') + count('deadline_unreachable');
    assert.ok(count('queue_timeout') + count('deadline_unreachable') > 0, `codes: ${codes.join(',')}`);
    // Every request the upstream saw either answered or timed out there; every other one was refused or
    // timed out in the queue, never labelled request_timeout.
    assert.equal(count('ok') + count('request_timeout'), called, `codes: ${codes.join(',')}`);
    assert.equal(notCalled, 12 - called, `codes: ${codes.join(',')}`);
    await gateway.stop('SIGKILL');
  });

  it('kill -9 of an instance: its async jobs complete on another instance, its sync requests never reach the upstream', async () => {
    const env = { MAX_CONCURRENT_REQUESTS: '2' };
    const doomed = await stack.startGateway(env);
    simulator.resetStats();
    const running = await Promise.all(
      [0, 1].map(() => postJson(`${doomed.url}/v1/jobs`, chatBody({ x_sim: { latencyMs: 3000 } }), { 'x-priority': 'high' })),
    );
    await waitFor('both jobs to run', () => simulator.stats.running === 2);
    // Sync requests wait behind them; their caller dies with the instance.
    const orphans = Array.from({ length: 3 }, () =>
      postJson(`${doomed.url}/v1/chat/completions`, chatBody({ user: 'orphan', x_sim: { latencyMs: 50 } }), { 'x-priority': 'high' }).catch((e: Error) => e),
    );
    await waitFor('the sync requests to wait', async () => (await waitingInRedis(redis)) === 3);
    const queued = await Promise.all(
      [0, 1, 2].map(() => postJson(`${doomed.url}/v1/jobs`, chatBody({ x_sim: { latencyMs: 50 } }), { 'x-priority': 'low' })),
    );
    await doomed.stop('SIGKILL');
    await Promise.all(orphans);
    simulator.resetStats();
    const survivor = await stack.startGateway(env);
    const ids = [...running, ...queued].map((r) => r.json.id as string);
    for (const id of ids) {
      await waitFor(`job ${id} to complete`, async () => (await jobStatus(survivor, id)) === 'completed', 30_000, 200);
    }
    // The three sync requests whose caller died with its instance never reach the upstream.
    assert.equal(simulator.stats.requestsByUser.orphan, undefined);
    // Every async job ran (the two cut off by the crash once more).
    assert.ok(simulator.stats.requestsByPath['/v1/chat/completions'] >= 5);
    await waitFor('the queue to be empty', async () => (await waitingInRedis(redis)) === 0);
    await survivor.stop('SIGKILL');
  });

  it('SIGTERM with a running async job past the grace period: the job is handed back and completes on another instance, never failed', async () => {
    const env = { MAX_CONCURRENT_REQUESTS: '2', SHUTDOWN_GRACE_MS: '700' };
    const stopping = await stack.startGateway(env);
    simulator.resetStats();
    const created = await postJson(`${stopping.url}/v1/jobs`, chatBody({ x_sim: { latencyMs: 2500 } }));
    await waitFor('the job to run', () => simulator.stats.running === 1);
    const code = await stopping.stop('SIGTERM');
    assert.equal(code, 0);
    assert.match(stopping.output(), /handed back/);
    const other = await stack.startGateway(env);
    const seen = new Set<string>();
    await waitFor('the job to complete on the other instance', async () => {
      const status = await jobStatus(other, created.json.id);
      seen.add(status);
      return status === 'completed';
    }, 20_000, 100);
    assert.ok(!seen.has('failed'), `statuses seen: ${[...seen].join(', ')}`);
    await other.stop('SIGKILL');
  });

  it('the same Idempotency-Key twice gives one job and one upstream call', async () => {
    const gateway = await stack.startGateway();
    simulator.resetStats();
    const headers = { 'idempotency-key': 'order-42' };
    const first = await postJson(`${gateway.url}/v1/jobs`, chatBody({ x_sim: { latencyMs: 100 } }), headers);
    const second = await postJson(`${gateway.url}/v1/jobs`, chatBody({ x_sim: { latencyMs: 100 } }), headers);
    assert.equal(first.status, 202);
    assert.equal(second.status, 202);
    assert.equal(second.json.id, first.json.id);
    await waitFor('the job to complete', async () => (await jobStatus(gateway, first.json.id)) === 'completed');
    const third = await postJson(`${gateway.url}/v1/jobs`, chatBody(), headers);
    assert.equal(third.json.id, first.json.id);
    assert.equal(third.json.status, 'completed');
    // Another key makes another job.
    const other = await postJson(`${gateway.url}/v1/jobs`, chatBody(), { 'idempotency-key': 'order-43' });
    assert.notEqual(other.json.id, first.json.id);
    await waitFor('the other job to complete', async () => (await jobStatus(gateway, other.json.id)) === 'completed');
    assert.equal(simulator.stats.requestsByPath['/v1/chat/completions'], 2);
    await gateway.stop('SIGKILL');
  });

  it('an add that outlasts its timeout is answered 503 and never reaches the upstream, even when it lands later', async () => {
    const proxy = await startRedisProxy(stack.redis.port);
    const gateway = await stack.startGateway({ REDIS_URL: proxy.url, MAX_CONCURRENT_REQUESTS: '1' });
    try {
      simulator.resetStats();
      const since = (await redis.xrevrange('bulwark:inference:events', '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
      const blocker = postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 3500 } }));
      await waitFor('the blocker to run', () => simulator.stats.running === 1);
      // Only the connection that adds jobs to BullMQ gets slow: admission answers, the add does not in time.
      proxy.delay('bulwark:bullmq', 3000);
      const refused = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 10 } }));
      assert.equal(refused.status, 503);
      assert.equal(refused.json.error.code, 'load_shed');
      assert.equal((await blocker).status, 200);
      // The add lands after its commit window (BullMQ's event stream tells): a worker takes it and drops it.
      const events = async (type: string) =>
        (await redis.xrange('bulwark:inference:events', `(${since}`, '+')).filter(([, fields]) => fields[1] === type).length;
      await waitFor('the late job to land', async () => (await events('added')) === 1, 15_000, 50);
      await waitFor('the late job to be taken and finished', async () => (await events('completed')) === 1, 15_000, 50);
      assert.equal(simulator.stats.requestsByPath['/v1/chat/completions'], 1);
      assert.match(gateway.output(), /could not queue job/);
    } finally {
      await gateway.stop('SIGKILL');
      await proxy.stop();
    }
  });
});
