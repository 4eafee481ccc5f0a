import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/upstream/simulator/simulator';
import { GatewayProcess, startGateway } from './support/gateway-process';
import { chatBody, expectErrorShape, postJson, readSse } from './support/http';
import { startRedis, TestRedis } from './support/redis-server';

describe('foundation: proxying with deadlines', () => {
  let redis: TestRedis;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;

  before(async () => {
    redis = await startRedis();
    simulator = new UpstreamSimulator({ latencyMs: 5, chunkIntervalMs: 5 });
    const { baseUrl } = await simulator.start();
    gateway = await startGateway({
      env: { REDIS_URL: redis.url, UPSTREAM_URL: baseUrl, REQUEST_TIMEOUT_MS: '3000', STREAM_IDLE_TIMEOUT_MS: '1000', RETRY_MAX_ATTEMPTS: '1' },
    });
  });

  after(async () => {
    await gateway?.stop();
    await simulator?.stop();
    await redis?.stop();
  });

  it('answers a plain chat completion from the upstream', async () => {
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody());
    assert.equal(res.status, 200);
    assert.equal(res.json.object, 'chat.completion');
    assert.equal(res.headers.get('x-upstream'), 'primary');
    assert.ok(res.headers.get('x-request-id'));
  });

  it('relays a stream and ends it with [DONE]', async () => {
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chatBody({ stream: true })),
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
    const events = await readSse(response);
    assert.equal(events.at(-1), '[DONE]');
    assert.ok(events.length > 3);
    assert.equal(JSON.parse(events[0]).object, 'chat.completion.chunk');
  });

  it('gives 504 timeout_error when the upstream hangs past the deadline', async () => {
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { fault: 'hang' } }), { 'x-request-timeout-ms': '500' });
    assert.equal(res.status, 504);
    assert.equal(expectErrorShape(res.json).type, 'timeout_error');
  });

  it('ends a stream that stalls with an SSE error event then [DONE]', async () => {
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chatBody({ stream: true, x_sim: { fault: 'stall', stallAfterChunks: 2 } })),
      signal: AbortSignal.timeout(10_000),
    });
    const events = await readSse(response);
    assert.equal(events.at(-1), '[DONE]');
    const error = JSON.parse(events.at(-2)!);
    assert.equal(expectErrorShape(error).type, 'timeout_error');
  });
});
