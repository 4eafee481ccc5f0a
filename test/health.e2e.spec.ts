import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess, startGateway } from './support/gateway-process';
import { chatBody, getJson, postJson } from './support/http';
import { freePort, startRedis, TestRedis } from './support/redis-server';
import { GatewayStack, startStack } from './support/stack';
import { waitFor } from './support/wait';

/** The keys of API.md §5's `graceful_degradation` example, section by section. */
const DEGRADATION_KEYS = ['health_score', 'current_strategy', 'rejection_rate', 'optimization_rate', 'queue_statistics', 'upstream_statistics'];
const QUEUE_KEYS = ['current_size', 'capacity_percent', 'status'];
const UPSTREAM_KEYS = [
  'total_requests',
  'successful_requests',
  'timeout_requests',
  'success_rate',
  'timeout_rate',
  'abandoned_requests',
  'abandoned_capacity_used',
  'time_until_reset',
  'rejection_threshold',
];

/** Asserts the contract's /health shape; returns the graceful_degradation section. */
function assertHealthShape(body: any): any {
  for (const key of ['status', 'info', 'error', 'details', 'graceful_degradation']) assert.ok(key in body, `/health lacks ${key}: ${JSON.stringify(body)}`);
  for (const indicator of ['redis', 'upstreams', 'queue', 'breakers']) assert.ok(indicator in body.details, `details lacks ${indicator}`);
  const g = body.graceful_degradation;
  assert.deepEqual(Object.keys(g).sort(), [...DEGRADATION_KEYS].sort());
  assert.deepEqual(Object.keys(g.queue_statistics).sort(), [...QUEUE_KEYS].sort());
  assert.deepEqual(Object.keys(g.upstream_statistics).sort(), [...UPSTREAM_KEYS].sort());
  assert.equal(typeof g.health_score, 'number');
  assert.ok(['healthy', 'stressed', 'degraded', 'critical'].includes(g.current_strategy));
  for (const key of UPSTREAM_KEYS) assert.equal(typeof g.upstream_statistics[key], 'number', key);
  return g;
}

describe('health: /health under normal load and overload', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;

  before(async () => {
    ({ simulator, gateway } = stack = await startStack({ env: { MAX_QUEUE_SIZE: '4', MAX_CONCURRENT_REQUESTS: '1', RETRY_MAX_ATTEMPTS: '1' } }));
  });

  after(() => stack?.stop());

  it('answers live, ready and the detailed body with every contract field', async () => {
    assert.equal((await getJson(`${gateway.url}/health/live`)).status, 200);
    const ready = await getJson(`${gateway.url}/health/ready`);
    assert.equal(ready.status, 200);
    assert.equal(ready.json.status, 'ok');
    for (let i = 0; i < 3; i++) assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, chatBody())).status, 200);
    const res = await getJson(`${gateway.url}/health`);
    assert.equal(res.status, 200);
    assert.equal(res.json.status, 'ok');
    const g = assertHealthShape(res.json);
    assert.ok(g.upstream_statistics.total_requests >= 3, JSON.stringify(g));
    assert.equal(g.upstream_statistics.success_rate, 100);
    assert.equal(g.queue_statistics.status, 'healthy');
    const queue = res.json.details.queue;
    assert.deepEqual(Object.keys(queue.by_priority).sort(), ['high', 'low', 'normal']);
    assert.equal(queue.max_queue_size, 4);
    const breakers = res.json.details.breakers;
    assert.ok(breakers.breakers.some((b: any) => b.key === 'primary:sim-small' && b.state === 'closed'), JSON.stringify(breakers));
  });

  it('shows the queue filling and requests being refused, and stays 200 while it can work', async () => {
    simulator.configure({ latencyMs: 1500 });
    // Overlapping requests, started 50 ms apart: admission counts a job once it is in the queue, so a burst
    // of truly simultaneous requests could all pass before the first one lands.
    const load: ReturnType<typeof postJson>[] = [];
    for (let i = 0; i < 12; i++) {
      load.push(postJson(`${gateway.url}/v1/chat/completions`, chatBody(), { 'x-priority': 'low' }, 30_000));
      await new Promise((r) => setTimeout(r, 50));
    }
    try {
      const busy = await waitFor(
        'a /health showing a filling queue',
        async () => {
          const res = await getJson(`${gateway.url}/health`, {}, 2000);
          return res.json?.graceful_degradation?.queue_statistics?.capacity_percent > 0 ? res : undefined;
        },
        10_000,
      );
      assert.equal(busy.status, 200);
      const g = assertHealthShape(busy.json);
      assert.ok(g.queue_statistics.current_size > 0);
      assert.ok(busy.json.details.queue.waiting > 0);
      assert.ok(busy.json.details.queue.active <= 1, "MAX_CONCURRENT_REQUESTS=1 holds");
    } finally {
      const statuses = (await Promise.all(load)).map((r) => r.status);
      assert.ok(statuses.includes(503), `expected refusals under overload, got ${statuses.join(',')}`);
      assert.ok(statuses.includes(200), `expected some requests served, got ${statuses.join(',')}`);
      simulator.configure({ latencyMs: 5 });
    }
    const after = assertHealthShape((await getJson(`${gateway.url}/health`)).json);
    assert.ok(after.rejection_rate > 0, JSON.stringify(after));
  });
});

describe('health: readiness when no upstream can take traffic', () => {
  let redis: TestRedis;
  let gateway: GatewayProcess;

  before(async () => {
    redis = await startRedis();
    const closed = await freePort();
    gateway = await startGateway({ env: { REDIS_URL: redis.url, UPSTREAM_URL: `http://127.0.0.1:${closed}/v1` } });
  });

  after(async () => {
    await gateway?.stop();
    await redis?.stop();
  });

  it('answers 503 with Retry-After on /health/ready and /health once the probe finds the upstream gone', async () => {
    const ready = await waitFor('/health/ready to turn 503', async () => {
      const res = await getJson(`${gateway.url}/health/ready`, {}, 2000);
      return res.status === 503 ? res : undefined;
    });
    assert.match(ready.headers.get('retry-after') ?? '', /^\d+$/);
    assert.equal(ready.json.status, 'error');
    assert.equal(ready.json.error.upstreams.status, 'down');
    assert.equal(ready.json.info.redis.status, 'up');

    const health = await getJson(`${gateway.url}/health`);
    assert.equal(health.status, 503);
    assert.match(health.headers.get('retry-after') ?? '', /^\d+$/);
    assertHealthShape(health.json);
    assert.equal(health.json.details.upstreams.upstreams[0].reachable, false);
    assert.equal((await getJson(`${gateway.url}/health/live`)).status, 200, 'liveness does not depend on the upstream');
  });
});
