import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { UpstreamSimulator } from '../src/upstream/simulator/simulator';
import { GatewayProcess, startGateway } from './support/gateway-process';
import { chatBody, expectErrorShape, getJson, postJson } from './support/http';
import { startRedis, TestRedis } from './support/redis-server';

const OUTER_TIMEOUT_MS = 30_000;
const words = (n: number) => Array.from({ length: n }, (_, i) => `word${i + 1} `).join('');

/** Polls `probe` until it returns true; fails after `timeoutMs`. */
async function eventually(what: string, probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const giveUpAt = Date.now() + timeoutMs;
  while (Date.now() < giveUpAt) {
    if (await probe()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting until ${what}`);
}

describe('graceful shutdown', () => {
  let redis: TestRedis;
  let simulator: UpstreamSimulator;
  let baseUrl: string;
  const gateways: GatewayProcess[] = [];

  const start = async (env: Record<string, string>) => {
    const gateway = await startGateway({
      env: { REDIS_URL: redis.url, UPSTREAM_URL: baseUrl, REQUEST_TIMEOUT_MS: '30000', RETRY_MAX_ATTEMPTS: '1', ...env },
    });
    gateways.push(gateway);
    return gateway;
  };

  before(async () => {
    redis = await startRedis();
    // 20 chunks 100 ms apart: a stream that lasts about two seconds.
    simulator = new UpstreamSimulator({ latencyMs: 5, chunkIntervalMs: 100 });
    ({ baseUrl } = await simulator.start());
  });

  after(async () => {
    for (const gateway of gateways) await gateway.stop('SIGKILL');
    await simulator?.stop();
    await redis?.stop();
  });

  it('lets a stream in flight finish, refuses new work with 503 shutting_down, fails readiness, then exits 0', async () => {
    const gateway = await start({ SHUTDOWN_GRACE_MS: '10000', STREAM_IDLE_TIMEOUT_MS: '5000' });
    const ready = await getJson(`${gateway.url}/health/ready`);
    assert.equal(ready.status, 200, ready.text);

    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chatBody({ stream: true, x_sim: { chunks: 20 } })),
      signal: AbortSignal.timeout(OUTER_TIMEOUT_MS),
    });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const first = await reader.read();
    text += decoder.decode(first.value, { stream: true });
    assert.match(text, /^data: /);

    gateway.child.kill('SIGTERM');

    // Readiness fails while draining, so a load balancer stops sending traffic.
    let draining: Awaited<ReturnType<typeof getJson>> | undefined;
    await eventually('/health/ready answers 503', async () => {
      draining = await getJson(`${gateway.url}/health/ready`);
      return draining.status === 503;
    });
    assert.match(draining!.text, /draining/);

    // New work is refused, with the headers that send a client elsewhere.
    const refused = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), {}, OUTER_TIMEOUT_MS);
    assert.equal(refused.status, 503, refused.text);
    const error = expectErrorShape(refused.json);
    assert.equal(error.type, 'overloaded_error');
    assert.equal(error.code, 'shutting_down');
    assert.match(refused.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    assert.equal(refused.headers.get('x-should-retry'), 'true');

    // Liveness holds: the process still serves.
    assert.equal((await getJson(`${gateway.url}/health/live`)).status, 200);

    // The stream in flight runs to its end.
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const events = text
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => e.slice(6));
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.ok(chunks.every((c) => !('error' in c)), 'the stream carries an error event');
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), words(20));

    assert.equal(await gateway.exited, 0);
  });

  it('exits 0 at once when idle, and stops listening', async () => {
    const gateway = await start({ SHUTDOWN_GRACE_MS: '10000' });
    assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { chunks: 1 } }))).status, 200);
    assert.equal(await gateway.stop('SIGTERM'), 0);
    await assert.rejects(fetch(`${gateway.url}/health/live`, { signal: AbortSignal.timeout(5000) }));
  });

  it('answers a request still in flight when the grace period ends, then exits 0', async () => {
    const gateway = await start({ SHUTDOWN_GRACE_MS: '1000' });
    const calls = () => simulator.stats.requestsByPath['/v1/chat/completions'] ?? 0;
    const before = calls();
    const pending = postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { fault: 'hang' } }), {}, OUTER_TIMEOUT_MS);
    await eventually('the upstream holds the request', async () => calls() > before);
    gateway.child.kill('SIGTERM');
    const res = await pending;
    assert.ok(res.status >= 500, `status ${res.status}`);
    expectErrorShape(res.json);
    assert.equal(await gateway.exited, 0);
  });

  it(
    'exits 0 on SIGTERM while a client holds a connection open without sending a request',
    async () => {
      const gateway = await start({ SHUTDOWN_GRACE_MS: '10000' });
      // What a browser's preconnect or a pooled client does: connect, then stay silent.
      const socket = connect(gateway.port, '127.0.0.1');
      await new Promise<void>((resolveConnect, reject) => socket.once('connect', resolveConnect).once('error', reject));
      try {
        assert.equal(await gateway.stop('SIGTERM'), 0);
        assert.doesNotMatch(gateway.output(), /did not finish/);
      } finally {
        socket.destroy();
      }
    },
  );
});
