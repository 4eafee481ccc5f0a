import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, expectErrorShape, getJson, postJson, postSse } from './support/http';
import { GatewayStack, startStack } from './support/stack';

describe('errors: upstream failures and bad requests', () => {
  /** Inference calls the upstream received (its background GET /models probes excluded). */
  const inferenceCalls = () =>
    ['/v1/chat/completions', '/v1/completions', '/v1/embeddings'].reduce((sum, path) => sum + (simulator.stats.requestsByPath[path] ?? 0), 0);

  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;
  let chatUrl: string;

  before(async () => {
    ({ simulator, gateway } = stack = await startStack({
      env: {
        REQUEST_TIMEOUT_MS: '5000',
        STREAM_IDLE_TIMEOUT_MS: '500',
        RETRY_MAX_ATTEMPTS: '1',
        MAX_BODY_BYTES: '2048',
        // Every failure here is provoked on purpose: keep the breaker out of the picture.
        BREAKER_MIN_CALLS: '100',
      },
    }));
    chatUrl = `${gateway.url}/v1/chat/completions`;
  });

  after(() => stack?.stop());

  describe('the upstream fails', () => {
    it('turns an upstream 500 into 502 upstream_error after one attempt', async () => {
      const before = inferenceCalls();
      const res = await postJson(chatUrl, chatBody({ x_sim: { fault: 'error', status: 500 } }));
      assert.equal(res.status, 502);
      const error = expectErrorShape(res.json);
      assert.equal(error.type, 'upstream_error');
      assert.equal(error.code, 'upstream_error');
      assert.equal(res.headers.get('x-should-retry'), 'true');
      assert.equal(res.headers.get('retry-after'), null);
      assert.equal(inferenceCalls(), before + 1);
    });

    it('turns an upstream 503 into 502 upstream_error', async () => {
      const res = await postJson(chatUrl, chatBody({ x_sim: { fault: 'error', status: 503 } }));
      assert.equal(res.status, 502);
      assert.equal(expectErrorShape(res.json).code, 'upstream_error');
    });

    it('answers an upstream 429 that outlasts the retries with 429 upstream_rate_limited and its Retry-After', async () => {
      const before = inferenceCalls();
      const res = await postJson(chatUrl, chatBody({ x_sim: { fault: 'error', status: 429, retryAfter: 1 } }));
      assert.equal(res.status, 429);
      const error = expectErrorShape(res.json);
      assert.equal(error.type, 'rate_limit_error');
      assert.equal(error.code, 'upstream_rate_limited');
      assert.equal(res.headers.get('retry-after'), '1');
      assert.equal(inferenceCalls(), before + 1);
    });

    it("passes an upstream 400 through with the upstream's own message", async () => {
      const res = await postJson(chatUrl, chatBody({ x_sim: { fault: 'error', status: 400 } }));
      assert.equal(res.status, 400);
      const error = expectErrorShape(res.json);
      assert.equal(error.message, 'Simulated client error 400.');
      assert.equal(error.type, 'invalid_request_error');
      assert.equal(res.headers.get('x-should-retry'), 'false');
    });

    it('passes an upstream 422 through with its status', async () => {
      const res = await postJson(chatUrl, chatBody({ x_sim: { fault: 'error', status: 422 } }));
      assert.equal(res.status, 422);
      assert.equal(expectErrorShape(res.json).message, 'Simulated client error 422.');
    });

    it('answers 502 when the upstream resets the connection', async () => {
      const res = await postJson(chatUrl, chatBody({ x_sim: { fault: 'reset' } }));
      assert.equal(res.status, 502);
      assert.equal(expectErrorShape(res.json).code, 'upstream_error');
    });

    it('answers 502 upstream_bad_response when the upstream sends broken JSON', async () => {
      const res = await postJson(chatUrl, chatBody({ x_sim: { fault: 'bad_json' } }));
      assert.equal(res.status, 502);
      const error = expectErrorShape(res.json);
      assert.equal(error.type, 'upstream_error');
      assert.equal(error.code, 'upstream_bad_response');
    });

    it('answers a stream that fails before its first byte with a plain JSON error', async () => {
      const res = await postJson(chatUrl, chatBody({ stream: true, x_sim: { fault: 'error', status: 500 } }));
      assert.equal(res.status, 502);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      assert.equal(expectErrorShape(res.json).code, 'upstream_error');
    });

    it('ends a stream whose upstream sends broken JSON with an SSE error event, then [DONE]', async () => {
      const res = await postSse(chatUrl, chatBody({ stream: true, x_sim: { fault: 'bad_json' } }));
      assert.equal(res.status, 200);
      assert.equal(res.events.at(-1), '[DONE]');
      assert.equal(JSON.parse(res.events[0]).object, 'chat.completion.chunk');
      const error = expectErrorShape(JSON.parse(res.events.at(-2)!));
      assert.equal(error.code, 'upstream_bad_response');
      assert.ok(!res.events.includes('{not json}'));
    });

    it('ends a stream that stalls mid-way with the chunks so far, an SSE timeout error, then [DONE]', async () => {
      const abortsBefore = simulator.stats.clientAborts;
      const res = await postSse(chatUrl, chatBody({ stream: true, x_sim: { fault: 'stall', stallAfterChunks: 3 } }));
      assert.equal(res.status, 200);
      assert.equal(res.events.at(-1), '[DONE]');
      const error = expectErrorShape(JSON.parse(res.events.at(-2)!));
      assert.equal(error.type, 'timeout_error');
      const content = res.events
        .slice(0, -2)
        .map((e) => JSON.parse(e).choices[0].delta.content ?? '')
        .join('');
      assert.equal(content, 'word1 word2 word3 ');
      // The silent upstream connection was closed, not left open.
      await simulator.waitForClientAborts(abortsBefore + 1, 5000);
    });
  });

  describe('the request is bad: answered 4xx in the contract shape, never sent upstream', () => {
    /**
     * Sends a request that must be refused: asserts a contract-shaped, non-retryable client error with the
     * request id, and that nothing reached the upstream. Returns the error.
     */
    async function refused(send: () => Promise<{ status: number; headers: Headers; json: any }>, status: number, code: string) {
      const requestsBefore = inferenceCalls();
      const res = await send();
      assert.equal(res.status, status, JSON.stringify(res.json));
      const error = expectErrorShape(res.json);
      assert.equal(error.code, code);
      assert.ok(error.suggestions.length > 0);
      assert.equal(res.headers.get('x-should-retry'), 'false');
      assert.ok(res.headers.get('x-request-id'));
      assert.equal(inferenceCalls(), requestsBefore, 'a bad request reached the upstream');
      return error;
    }

    it('refuses malformed JSON with 400 invalid_json', async () => {
      const error = await refused(() => postJson(chatUrl, '{"model": "sim-small", "messages": ['), 400, 'invalid_json');
      assert.equal(error.type, 'invalid_request_error');
    });

    it('refuses an empty JSON body with 400 invalid_json', async () => {
      await refused(() => postJson(chatUrl, ''), 400, 'invalid_json');
    });

    it('refuses a body that is not UTF-8 with 400 invalid_json', async () => {
      await refused(() => postJson(chatUrl, Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), 400, 'invalid_json');
    });

    it('refuses a prototype-polluting body with 400 invalid_json', async () => {
      await refused(() => postJson(chatUrl, '{"model":"sim-small","messages":[{"role":"user"}],"__proto__":{"x":1}}'), 400, 'invalid_json');
    });

    it('refuses a body nested too deep with 400 invalid_json', async () => {
      await refused(() => postJson(chatUrl, `{"model":"sim-small","x":${'['.repeat(100)}${']'.repeat(100)}}`), 400, 'invalid_json');
    });

    for (const [name, body, param] of [
      ['model: 5', { model: 5, messages: [{ role: 'user', content: 'hi' }] }, 'model'],
      ['messages: "x"', { model: 'sim-small', messages: 'x' }, 'messages'],
      ['stream: "yes"', chatBody({ stream: 'yes' }), 'stream'],
      ['max_tokens: -1', chatBody({ max_tokens: -1 }), 'max_tokens'],
      ['no model', { messages: [{ role: 'user', content: 'hi' }] }, 'model'],
    ] as const) {
      it(`refuses ${name} with 400 invalid_body naming the field`, async () => {
        const error = await refused(() => postJson(chatUrl, body), 400, 'invalid_body');
        assert.equal(error.type, 'invalid_request_error');
        assert.equal(error.param, param);
        assert.match(error.message, new RegExp(param));
      });
    }

    it('refuses a body that is not an object with 400 invalid_body', async () => {
      for (const body of ['[1, 2]', '"a string"', '42', 'null']) {
        await refused(() => postJson(chatUrl, body), 400, 'invalid_body');
      }
    });

    it('refuses a bad legacy completion and a bad embedding request', async () => {
      assert.equal((await refused(() => postJson(`${gateway.url}/v1/completions`, { model: 'sim-small' }), 400, 'invalid_body')).param, 'prompt');
      assert.equal((await refused(() => postJson(`${gateway.url}/v1/embeddings`, { model: 'sim-small' }), 400, 'invalid_body')).param, 'input');
    });

    it('refuses a body over MAX_BODY_BYTES with 413 body_too_large', async () => {
      const error = await refused(() => postJson(chatUrl, chatBody({ messages: [{ role: 'user', content: 'x'.repeat(4096) }] })), 413, 'body_too_large');
      assert.equal(error.type, 'invalid_request_error');
    });

    it('takes a body just under MAX_BODY_BYTES', async () => {
      const res = await postJson(chatUrl, chatBody({ messages: [{ role: 'user', content: 'x'.repeat(1900) }] }));
      assert.equal(res.status, 200, res.text);
    });

    it('refuses an unknown route with 404 route_not_found', async () => {
      for (const send of [
        () => postJson(`${gateway.url}/v1/chat/complete`, chatBody()),
        () => postJson(`${gateway.url}/v2/chat/completions`, chatBody()),
        () => postJson(`${gateway.url}/nothing-here`, '{}'),
        () => getJson(`${gateway.url}/v1/chat/completions`),
      ]) {
        assert.equal((await refused(send, 404, 'route_not_found')).type, 'not_found_error');
      }
    });

    it('refuses a body that is not JSON with 415', async () => {
      for (const [body, type] of [
        [JSON.stringify(chatBody()), 'text/plain'],
        ['model=sim-small', 'application/x-www-form-urlencoded'],
        ['<xml/>', 'application/xml'],
      ] as const) {
        const error = await refused(() => postJson(chatUrl, body, { 'content-type': type }), 415, 'unsupported_media_type');
        assert.equal(error.type, 'invalid_request_error');
      }
    });

    it('refuses bad X-Priority and X-Request-Timeout-Ms headers with 400 invalid_header', async () => {
      assert.equal((await refused(() => postJson(chatUrl, chatBody(), { 'x-priority': 'urgent' }), 400, 'invalid_header')).param, 'X-Priority');
      assert.equal((await refused(() => postJson(chatUrl, chatBody(), { 'x-request-timeout-ms': 'soon' }), 400, 'invalid_header')).param, 'X-Request-Timeout-Ms');
      assert.equal((await refused(() => postJson(chatUrl, chatBody(), { 'x-request-timeout-ms': '0' }), 400, 'invalid_header')).param, 'X-Request-Timeout-Ms');
    });
  });
});
