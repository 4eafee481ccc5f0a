import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, expectErrorShape, postJson, postSse } from './support/http';
import { GatewayStack, startStack } from './support/stack';

const chatCalls = (sim: UpstreamSimulator) => sim.stats.requestsByPath['/v1/chat/completions'] ?? 0;

/** A fault that hits only the first `times` requests carrying this (fresh) key. */
const flaky = (fault: Record<string, unknown>, times: number) => ({ fault: 'error', times, key: randomUUID(), ...fault });

describe('retries within the deadline and the budget', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;

  before(async () => {
    ({ simulator, gateway } = stack = await startStack({
      env: { RETRY_MAX_ATTEMPTS: '3', RETRY_BASE_DELAY_MS: '50', RETRY_MAX_DELAY_MS: '200', REQUEST_TIMEOUT_MS: '10000' },
    }));
    // The adaptive strategy judges the recent error rate without a minimum of calls: on an idle gateway
    // the first failed attempt alone would read as 100 % errors, switch to `degraded` and turn retries
    // off. Ordinary traffic first, so that this suite's few failures stay a small share.
    for (let i = 0; i < 40; i++) assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, chatBody())).status, 200);
  });

  after(() => stack?.stop());

  it('retries a 429 after its Retry-After of 1 s and answers 200', async () => {
    const before = chatCalls(simulator);
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: flaky({ status: 429, retryAfter: 1 }, 1) }));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'chat.completion');
    assert.equal(chatCalls(simulator) - before, 2, 'the 429, then the retry');
  });

  it('retries 503s with backoff until one succeeds, within RETRY_MAX_ATTEMPTS', async () => {
    const before = chatCalls(simulator);
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: flaky({ status: 503 }, 2) }));
    assert.equal(res.status, 200, res.text);
    assert.equal(chatCalls(simulator) - before, 3);
  });

  it('gives up after RETRY_MAX_ATTEMPTS and reports the upstream failure', async () => {
    const before = chatCalls(simulator);
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: flaky({ status: 500 }, 5) }));
    assert.equal(res.status, 502, res.text);
    const error = expectErrorShape(res.json);
    assert.equal(error.type, 'upstream_error');
    assert.equal(error.code, 'upstream_error');
    assert.match(error.message, /500/);
    assert.equal(chatCalls(simulator) - before, 3);
  });

  it('answers a 429 that outlasts the retries with 429 upstream_rate_limited and the upstream\'s Retry-After: 2', async () => {
    const before = chatCalls(simulator);
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: flaky({ status: 429, retryAfter: 2 }, 5) }));
    assert.equal(res.status, 429, res.text);
    const error = expectErrorShape(res.json);
    assert.equal(error.type, 'rate_limit_error');
    assert.equal(error.code, 'upstream_rate_limited');
    assert.equal(res.headers.get('retry-after'), '2');
    assert.equal(res.headers.get('x-should-retry'), 'true');
    assert.equal(chatCalls(simulator) - before, 3, 'every attempt waited out the upstream\'s Retry-After');
  });

  it("fails at once with the upstream's error when its Retry-After does not fit the deadline", async () => {
    const before = chatCalls(simulator);
    const res = await postJson(
      `${gateway.url}/v1/chat/completions`,
      chatBody({ x_sim: flaky({ status: 503, retryAfter: 30 }, 1) }),
      { 'x-request-timeout-ms': '3000' },
    );
    assert.equal(res.status, 502, res.text);
    assert.match(expectErrorShape(res.json).message, /503/);
    assert.equal(chatCalls(simulator) - before, 1, 'no retry: the wait would outlive the deadline');
  });

  it("never retries a client error; the upstream's 400 passes through", async () => {
    const before = chatCalls(simulator);
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { fault: 'error', status: 400 } }));
    assert.equal(res.status, 400, res.text);
    assert.equal(res.headers.get('x-should-retry'), 'false');
    assert.equal(chatCalls(simulator) - before, 1);
  });

  it('retries a stream that fails before its first byte, and answers it in full', async () => {
    const before = chatCalls(simulator);
    const { status, events } = await postSse(`${gateway.url}/v1/chat/completions`, chatBody({ stream: true, x_sim: flaky({ status: 502 }, 1) }), {}, 10_000);
    assert.equal(status, 200);
    assert.equal(events.at(-1), '[DONE]');
    assert.ok(events.slice(0, -1).every((e) => JSON.parse(e).object === 'chat.completion.chunk'));
    assert.equal(chatCalls(simulator) - before, 2);
  });

  it('never retries a stream after its first byte: it ends with an SSE error event', async () => {
    const before = chatCalls(simulator);
    const { events } = await postSse(`${gateway.url}/v1/chat/completions`, chatBody({ stream: true, x_sim: { fault: 'bad_json' } }), {}, 10_000);
    assert.equal(events.at(-1), '[DONE]');
    assert.equal(expectErrorShape(JSON.parse(events.at(-2)!)).type, 'upstream_error');
    assert.equal(chatCalls(simulator) - before, 1);
  });
});
