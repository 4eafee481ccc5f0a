import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, expectErrorShape, getJson, postJson, postSse, send, words } from './support/http';
import { GatewayStack, startStack } from './support/stack';

const UPSTREAM_KEY = 'sk-upstream-secret-7f3a9c';

describe('proxying the OpenAI routes', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;

  before(async () => {
    ({ simulator, gateway } = stack = await startStack({
      simulator: { latencyMs: 5, chunkIntervalMs: 5, apiKey: UPSTREAM_KEY },
      env: {
        UPSTREAM_API_KEY: UPSTREAM_KEY,
        // Long enough that only the client can end the request in the cancellation test.
        REQUEST_TIMEOUT_MS: '30000',
        RETRY_MAX_ATTEMPTS: '1',
        SHUTDOWN_GRACE_MS: '1000',
      },
    }));
  });

  after(() => stack?.stop());

  it('answers a plain chat completion with the upstream answer', async () => {
    const before = simulator.stats.requestsByPath['/v1/chat/completions'] ?? 0;
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody());
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(res.json.object, 'chat.completion');
    assert.equal(res.json.model, 'sim-small');
    assert.equal(res.json.choices[0].message.role, 'assistant');
    assert.equal(res.json.choices[0].message.content, words(8));
    assert.equal(res.json.choices[0].finish_reason, 'stop');
    assert.deepEqual(res.json.usage, { prompt_tokens: 1, completion_tokens: 8, total_tokens: 9 });
    assert.equal(res.headers.get('x-upstream'), 'primary');
    assert.equal(simulator.stats.requestsByPath['/v1/chat/completions'], before + 1);
  });

  it('relays a streamed chat completion chunk by chunk, ending with [DONE]', async () => {
    const res = await postSse(`${gateway.url}/v1/chat/completions`, chatBody({ stream: true, x_sim: { chunks: 5 } }));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    assert.equal(res.events.at(-1), '[DONE]');
    assert.equal(res.events.filter((e) => e === '[DONE]').length, 1);
    const chunks = res.events.slice(0, -1).map((e) => JSON.parse(e));
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), words(5));
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
  });

  it('passes stream_options through, so the usage chunk arrives', async () => {
    const res = await postSse(`${gateway.url}/v1/chat/completions`, chatBody({ stream: true, stream_options: { include_usage: true }, x_sim: { chunks: 3 } }));
    const last = JSON.parse(res.events.at(-2)!);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 3);
  });

  it('answers a legacy completion', async () => {
    const res = await postJson(`${gateway.url}/v1/completions`, { model: 'sim-small', prompt: 'Say this is a test', max_tokens: 4 });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'text_completion');
    assert.equal(res.json.choices[0].text, words(4));
    assert.equal(res.json.choices[0].finish_reason, 'length');
  });

  it('streams a legacy completion', async () => {
    const res = await postSse(`${gateway.url}/v1/completions`, { model: 'sim-small', prompt: 'Say this is a test', stream: true, x_sim: { chunks: 6 } });
    assert.equal(res.status, 200);
    assert.equal(res.events.at(-1), '[DONE]');
    const chunks = res.events.slice(0, -1).map((e) => JSON.parse(e));
    assert.ok(chunks.every((c) => c.object === 'text_completion'));
    assert.equal(chunks.map((c) => c.choices[0].text).join(''), words(6));
  });

  it('answers embeddings, one vector per input', async () => {
    const res = await postJson(`${gateway.url}/v1/embeddings`, { model: 'sim-small', input: ['first text', 'second text'] });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'list');
    assert.deepEqual(res.json.data.map((d: { index: number }) => d.index), [0, 1]);
    for (const item of res.json.data) {
      assert.equal(item.object, 'embedding');
      assert.equal(item.embedding.length, 8);
      assert.ok(item.embedding.every((x: unknown) => typeof x === 'number'));
    }
  });

  it('answers embeddings as JSON even when the body asks for a stream', async () => {
    const res = await postJson(`${gateway.url}/v1/embeddings`, { model: 'sim-small', input: 'text', stream: true });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'list');
  });

  it('forwards unknown fields untouched', async () => {
    const body = {
      model: 'sim-small',
      messages: [
        { role: 'system', content: 'be brief', name: 'policy' },
        { role: 'user', content: [{ type: 'text', text: 'hello' }], cache_control: { type: 'ephemeral' } },
      ],
      top_k: 20,
      repetition_penalty: 1.05,
      guided_json: { type: 'object', properties: { answer: { type: 'string' } } },
      chat_template_kwargs: { enable_thinking: false },
      seed: 7,
      metadata: null,
    };
    const res = await postJson(`${gateway.url}/v1/chat/completions`, body);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(simulator.stats.lastBody, body);
  });

  it('lists the models the upstream serves', async () => {
    const res = await getJson(`${gateway.url}/v1/models`);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'list');
    const ids = res.json.data.map((m: { id: string }) => m.id);
    assert.ok(ids.includes('sim-small') && ids.includes('sim-large'), JSON.stringify(ids));
  });

  it('sends UPSTREAM_API_KEY upstream instead of the client credentials, and never shows it to the client', async () => {
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), { authorization: 'Bearer client-own-key' });
    assert.equal(res.status, 200, res.text);
    assert.equal(simulator.stats.lastHeaders?.authorization, `Bearer ${UPSTREAM_KEY}`);
    const stream = await send(`${gateway.url}/v1/chat/completions`, { method: 'POST', body: chatBody({ stream: true }), timeoutMs: 15_000 });
    const streamText = await stream.text();
    const error = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { fault: 'error', status: 400 } }));
    for (const [headers, text] of [
      [res.headers, res.text],
      [stream.headers, streamText],
      [error.headers, error.text],
    ] as const) {
      assert.ok(!text.includes(UPSTREAM_KEY));
      assert.ok(![...headers.values()].some((v) => v.includes(UPSTREAM_KEY)));
    }
  });

  it('echoes X-Request-Id when given, on answers, streams and errors', async () => {
    const ok = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), { 'x-request-id': 'trace-4f2a-0001' });
    assert.equal(ok.headers.get('x-request-id'), 'trace-4f2a-0001');
    const stream = await send(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'x-request-id': 'trace-4f2a-0002' },
      body: chatBody({ stream: true }),
      timeoutMs: 15_000,
    });
    await stream.text();
    assert.equal(stream.headers.get('x-request-id'), 'trace-4f2a-0002');
    const bad = await postJson(`${gateway.url}/v1/chat/completions`, { model: 5 }, { 'x-request-id': 'trace-4f2a-0003' });
    assert.equal(bad.status, 400);
    assert.equal(bad.headers.get('x-request-id'), 'trace-4f2a-0003');
  });

  it('generates a distinct X-Request-Id when none is given', async () => {
    const a = await postJson(`${gateway.url}/v1/chat/completions`, chatBody());
    const b = await postJson(`${gateway.url}/v1/chat/completions`, chatBody());
    const idA = a.headers.get('x-request-id');
    const idB = b.headers.get('x-request-id');
    assert.match(idA ?? '', /^[0-9a-f-]{36}$/);
    assert.notEqual(idA, idB);
  });

  it('aborts the upstream call when the client goes away', async () => {
    const abortsBefore = simulator.stats.clientAborts;
    const chatCalls = () => simulator.stats.requestsByPath['/v1/chat/completions'] ?? 0;
    const requestsBefore = chatCalls();
    const controller = new AbortController();
    const pending = send(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      body: chatBody({ x_sim: { fault: 'hang' } }),
      signal: controller.signal,
    }).catch((error: unknown) => error);
    // Wait until the upstream holds the request, then hang up.
    for (let i = 0; i < 200 && chatCalls() === requestsBefore; i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(chatCalls(), requestsBefore + 1, 'the request never reached the upstream');
    controller.abort();
    assert.equal((await pending as Error).name, 'AbortError');
    // The deadline is 30 s away: only the client's departure can close the upstream call this soon.
    await simulator.waitForClientAborts(abortsBefore + 1, 5000);
    assert.equal(simulator.stats.inFlight, 0);
  });

  it('aborts the upstream stream when the client goes away mid-stream', async () => {
    simulator.configure({ chunkIntervalMs: 100 });
    try {
      const abortsBefore = simulator.stats.clientAborts;
      const controller = new AbortController();
      const response = await send(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        body: chatBody({ stream: true, x_sim: { chunks: 200 } }),
        signal: controller.signal,
      });
      assert.equal(response.status, 200);
      const reader = response.body!.getReader();
      const first = await reader.read();
      assert.match(Buffer.from(first.value!).toString(), /^data: /);
      controller.abort();
      await simulator.waitForClientAborts(abortsBefore + 1, 5000);
    } finally {
      simulator.configure({ chunkIntervalMs: 5 });
    }
  });

  it('refuses a model the upstream does not serve with its own 404', async () => {
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ model: 'no-such-model' }));
    assert.equal(res.status, 404);
    const error = expectErrorShape(res.json);
    assert.equal(error.code, 'model_not_found');
    assert.match(error.message, /no-such-model/);
  });
});
