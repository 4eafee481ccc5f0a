import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, expectErrorShape, postJson, postSse } from './support/http';
import { GatewayStack, startStack } from './support/stack';

describe('foundation: proxying with deadlines', () => {
  let stack: GatewayStack;
  let gateway: GatewayProcess;

  before(async () => {
    ({ gateway } = stack = await startStack({ env: { REQUEST_TIMEOUT_MS: '3000', STREAM_IDLE_TIMEOUT_MS: '1000', RETRY_MAX_ATTEMPTS: '1' } }));
  });

  after(() => stack?.stop());

  it('answers a plain chat completion from the upstream', async () => {
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody());
    assert.equal(res.status, 200);
    assert.equal(res.json.object, 'chat.completion');
    assert.equal(res.headers.get('x-upstream'), 'primary');
    assert.ok(res.headers.get('x-request-id'));
  });

  it('relays a stream and ends it with [DONE]', async () => {
    const { status, headers, events } = await postSse(`${gateway.url}/v1/chat/completions`, chatBody({ stream: true }), {}, 10_000);
    assert.equal(status, 200);
    assert.match(headers.get('content-type') ?? '', /text\/event-stream/);
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
    const { events } = await postSse(`${gateway.url}/v1/chat/completions`, chatBody({ stream: true, x_sim: { fault: 'stall', stallAfterChunks: 2 } }), {}, 10_000);
    assert.equal(events.at(-1), '[DONE]');
    const error = JSON.parse(events.at(-2)!);
    assert.equal(expectErrorShape(error).type, 'timeout_error');
  });
});
