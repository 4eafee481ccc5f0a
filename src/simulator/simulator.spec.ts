import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { type SimulatorOptions, UpstreamSimulator } from './simulator';

type Json = Record<string, any>;

async function startSim(t: TestContext, options: SimulatorOptions = {}) {
  const sim = new UpstreamSimulator({ latencyMs: 0, chunkIntervalMs: 1, ...options });
  const { baseUrl } = await sim.start(0);
  t.after(() => sim.stop());
  return { sim, baseUrl, root: baseUrl.replace(/\/v1$/, '') };
}

function post(url: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(init.headers as Record<string, string>) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: init.signal,
  });
}

const chat = (model = 'sim-small', extra: Json = {}) => ({
  model,
  messages: [{ role: 'user', content: 'hello there' }],
  ...extra,
});

const hang = () => chat('sim-small', { x_sim: { fault: 'hang' } });

function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .filter((block) => block.length > 0)
    .map((block) => {
      assert.ok(block.startsWith('data: '), `not an SSE data event: ${block}`);
      return block.slice('data: '.length);
    });
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(condition(), `condition never held: ${what}`);
}

/** Reads SSE events from a streaming response until `count` have arrived. */
async function readEvents(res: Response, count: number): Promise<string[]> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (sseData(text.slice(0, text.lastIndexOf('\n\n') + 2)).length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  return sseData(text.slice(0, text.lastIndexOf('\n\n') + 2));
}

test('GET /v1/models lists the configured models', async (t) => {
  const { baseUrl } = await startSim(t, { models: ['a', 'b'] });
  const res = await fetch(`${baseUrl}/models`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as Json;
  assert.equal(body.object, 'list');
  assert.deepEqual(
    body.data.map((m: Json) => [m.id, m.object, m.owned_by, typeof m.created]),
    [['a', 'model', 'bulwark-sim', 'number'], ['b', 'model', 'bulwark-sim', 'number']],
  );
});

test('non-stream chat completion has the OpenAI shape and is counted', async (t) => {
  const { sim, baseUrl } = await startSim(t, { defaultChunks: 4 });
  const res = await post(`${baseUrl}/chat/completions`, chat('sim-large'));
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /application\/json/);
  const body = (await res.json()) as Json;
  assert.match(body.id, /^chatcmpl-/);
  assert.equal(body.object, 'chat.completion');
  assert.equal(body.model, 'sim-large');
  assert.equal(typeof body.created, 'number');
  assert.deepEqual(body.choices, [
    { index: 0, message: { role: 'assistant', content: 'word1 word2 word3 word4 ', refusal: null }, finish_reason: 'stop', logprobs: null },
  ]);
  assert.deepEqual(body.usage, { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 });
  const stats = sim.stats;
  assert.equal(stats.requestsTotal, 1);
  assert.deepEqual(stats.requestsByPath, { '/v1/chat/completions': 1 });
  assert.equal(stats.completed, 1);
  assert.equal(stats.inFlight, 0);
  assert.deepEqual(stats.lastBody, chat('sim-large'));
});

test('streamed chat sends role, one chunk per word, finish, usage, then [DONE]', async (t) => {
  const { baseUrl } = await startSim(t, { defaultChunks: 3 });
  const body = chat('sim-small', { stream: true, stream_options: { include_usage: true } });
  const res = await post(`${baseUrl}/chat/completions`, body);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
  const events = sseData(await res.text());
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as Json);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
  assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  assert.deepEqual(
    chunks.slice(1, 4).map((c) => c.choices[0].delta.content),
    ['word1 ', 'word2 ', 'word3 '],
  );
  assert.deepEqual(chunks[4].choices[0].delta, {});
  assert.equal(chunks[4].choices[0].finish_reason, 'stop');
  assert.deepEqual(chunks[5].choices, []);
  assert.deepEqual(chunks[5].usage, { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 });
  assert.equal(chunks.length, 6);
});

test('max_tokens caps the words and reports finish_reason length', async (t) => {
  const { baseUrl } = await startSim(t, { defaultChunks: 8 });
  const body = (await (await post(`${baseUrl}/chat/completions`, chat('sim-small', { max_tokens: 3 }))).json()) as Json;
  assert.equal(body.choices[0].message.content, 'word1 word2 word3 ');
  assert.equal(body.choices[0].finish_reason, 'length');
  assert.equal(body.usage.completion_tokens, 3);

  const legacy = { model: 'sim-small', prompt: 'hi', max_tokens: 2, stream: true };
  const streamed = sseData(await (await post(`${baseUrl}/completions`, legacy)).text());
  const chunks = streamed.slice(0, -1).map((e) => JSON.parse(e) as Json);
  assert.ok(chunks.every((c) => c.object === 'text_completion'));
  assert.deepEqual(chunks.map((c) => c.choices[0].text), ['word1 ', 'word2 ', '']);
  assert.equal(chunks.at(-1)!.choices[0].finish_reason, 'length');
});

test('legacy completions answer with text_completion', async (t) => {
  const { baseUrl } = await startSim(t, { defaultChunks: 2 });
  const body = (await (await post(`${baseUrl}/completions`, { model: 'sim-small', prompt: 'say hi' })).json()) as Json;
  assert.equal(body.object, 'text_completion');
  assert.deepEqual(body.choices, [{ text: 'word1 word2 ', index: 0, finish_reason: 'stop', logprobs: null }]);
  assert.deepEqual(body.usage, { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 });
});

test('embeddings are deterministic 8-float vectors per input', async (t) => {
  const { baseUrl } = await startSim(t);
  const many = (await (await post(`${baseUrl}/embeddings`, { model: 'sim-small', input: ['alpha', 'beta'] })).json()) as Json;
  assert.equal(many.object, 'list');
  assert.equal(many.model, 'sim-small');
  assert.deepEqual(
    many.data.map((d: Json) => [d.object, d.index, d.embedding.length]),
    [['embedding', 0, 8], ['embedding', 1, 8]],
  );
  assert.ok(many.data[0].embedding.every((x: unknown) => typeof x === 'number' && Number.isFinite(x)));
  assert.notDeepEqual(many.data[0].embedding, many.data[1].embedding);
  const one = (await (await post(`${baseUrl}/embeddings`, { model: 'sim-small', input: 'alpha' })).json()) as Json;
  assert.deepEqual(one.data[0].embedding, many.data[0].embedding);
  assert.equal(one.usage.prompt_tokens, 1);
});

test('error fault answers the status with an OpenAI error and Retry-After', async (t) => {
  const { baseUrl } = await startSim(t);
  const rateLimited = chat('sim-small', { x_sim: { fault: 'error', status: 429, retryAfter: 7 } });
  const limited = await post(`${baseUrl}/chat/completions`, rateLimited);
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get('retry-after'), '7');
  const body = (await limited.json()) as Json;
  assert.equal(body.error.type, 'rate_limit_error');
  assert.equal(body.error.code, 'rate_limit_exceeded');

  const failed = await post(`${baseUrl}/chat/completions`, chat('sim-small', { x_sim: { fault: 'error' } }));
  assert.equal(failed.status, 500);
  assert.equal(failed.headers.get('retry-after'), null);
  assert.equal(((await failed.json()) as Json).error.type, 'server_error');
});

test('model faults set by configure apply per model, yield to x_sim, and clear', async (t) => {
  const { baseUrl, sim } = await startSim(t);
  sim.configure({ modelFaults: { 'sim-large': { fault: 'error', status: 503 } } });
  assert.equal((await post(`${baseUrl}/chat/completions`, chat('sim-large'))).status, 503);
  assert.equal((await post(`${baseUrl}/chat/completions`, chat('sim-small'))).status, 200);
  assert.equal((await post(`${baseUrl}/chat/completions`, chat('sim-large', { x_sim: { fault: 'none' } }))).status, 200);
  sim.configure({ modelFaults: {} });
  assert.equal((await post(`${baseUrl}/chat/completions`, chat('sim-large'))).status, 200);
});

test('a fault with times hits only the first requests of its key, then the request is served', async (t) => {
  const { baseUrl } = await startSim(t);
  const flaky = (key: string) => chat('sim-small', { x_sim: { fault: 'error', status: 429, retryAfter: 1, times: 2, key } });
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await post(`${baseUrl}/chat/completions`, flaky('k1'))).status);
  statuses.push((await post(`${baseUrl}/chat/completions`, flaky('k2'))).status);
  assert.deepEqual(statuses, [429, 429, 200, 429], 'k2 has its own count');
  const bad = await post(`${baseUrl}/chat/completions`, chat('sim-small', { x_sim: { fault: 'error', times: 1.5 } }));
  assert.equal(bad.status, 400);
});

test('a model fault with times counts per model and restarts when configured again', async (t) => {
  const { baseUrl, sim } = await startSim(t);
  sim.configure({ modelFaults: { 'sim-large': { fault: 'error', status: 503, times: 1 } } });
  const statuses = async () => [
    (await post(`${baseUrl}/chat/completions`, chat('sim-large'))).status,
    (await post(`${baseUrl}/chat/completions`, chat('sim-large'))).status,
  ];
  assert.deepEqual(await statuses(), [503, 200]);
  sim.configure({ modelFaults: { 'sim-large': { fault: 'error', status: 503, times: 1 } } });
  assert.deepEqual(await statuses(), [503, 200]);
});

test('a hanging request that the client aborts is counted as a client abort', async (t) => {
  const { baseUrl, sim } = await startSim(t);
  const controller = new AbortController();
  const pending = post(`${baseUrl}/chat/completions`, hang(), { signal: controller.signal });
  await until(() => sim.stats.running === 1, 'hang request running');
  controller.abort();
  await assert.rejects(pending, { name: 'AbortError' });
  await sim.waitForClientAborts(1, 5000);
  await until(() => sim.stats.inFlight === 0, 'in-flight drained');
  assert.equal(sim.stats.completed, 0);
  await assert.rejects(sim.waitForClientAborts(2, 20), /Timed out/);
});

test('capacity=1 serves concurrent requests one at a time, all complete', async (t) => {
  const { baseUrl, sim } = await startSim(t, { capacity: 1, latencyMs: 20 });
  const answers = await Promise.all([1, 2, 3].map(() => post(`${baseUrl}/chat/completions`, chat())));
  assert.deepEqual(answers.map((r) => r.status), [200, 200, 200]);
  await Promise.all(answers.map((r) => r.json()));
  assert.equal(sim.stats.maxInFlight, 1);
  assert.equal(sim.stats.completed, 3);
});

test('requests beyond capacity wait in FIFO and show up in /metrics', async (t) => {
  const { baseUrl, root, sim } = await startSim(t, { capacity: 1 });
  const controller = new AbortController();
  const blocker = post(`${baseUrl}/chat/completions`, hang(), { signal: controller.signal });
  blocker.catch(() => undefined);
  await until(() => sim.stats.running === 1, 'blocker running');
  const first = post(`${baseUrl}/chat/completions`, chat('sim-large'));
  await until(() => sim.stats.waiting === 1, 'first queued request waiting');
  const second = post(`${baseUrl}/chat/completions`, chat('sim-large'));
  await until(() => sim.stats.waiting === 2, 'second queued request waiting');
  assert.equal(sim.stats.inFlight, 3);

  const metrics = await (await fetch(`${root}/metrics`)).text();
  assert.match(metrics, /^# TYPE vllm:num_requests_running gauge$/m);
  assert.match(metrics, /^vllm:num_requests_running\{model_name="sim-small"\} 1$/m);
  assert.match(metrics, /^vllm:num_requests_waiting\{model_name="sim-large"\} 2$/m);
  assert.match(metrics, /^vllm:num_requests_waiting\{model_name="sim-small"\} 0$/m);
  assert.match(metrics, /^vllm:kv_cache_usage_perc\{model_name="sim-small"\} 1$/m);

  controller.abort();
  // Ids are numbered when a request gets its slot, so FIFO admission means ascending ids.
  const ids = await Promise.all([first, second].map(async (r) => ((await (await r).json()) as Json).id as string));
  const [a, b] = ids.map((id) => Number(id.replace(/\D/g, '')));
  assert.ok(a < b, `admitted out of order: ${ids.join(', ')}`);
  assert.equal(sim.stats.maxInFlight, 1);
});

test('api key is required on /v1 when set, but not on /health', async (t) => {
  const { baseUrl, root, sim } = await startSim(t, { apiKey: 'secret' });
  const denied = await fetch(`${baseUrl}/models`);
  assert.equal(denied.status, 401);
  assert.equal(((await denied.json()) as Json).error.code, 'invalid_api_key');
  assert.equal((await fetch(`${baseUrl}/models`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
  const ok = await post(`${baseUrl}/chat/completions`, chat(), { headers: { authorization: 'Bearer secret' } });
  assert.equal(ok.status, 200);
  assert.equal(sim.stats.lastHeaders?.authorization, 'Bearer secret');
  assert.deepEqual(await (await fetch(`${root}/health`)).json(), { status: 'ok' });
});

test('unknown model, bad JSON and missing messages are OpenAI-shaped 4xx', async (t) => {
  const { baseUrl } = await startSim(t);
  const missing = await post(`${baseUrl}/chat/completions`, chat('nope'));
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), {
    error: {
      message: 'The model `nope` does not exist.',
      type: 'invalid_request_error',
      param: 'model',
      code: 'model_not_found',
    },
  });
  const garbage = await post(`${baseUrl}/chat/completions`, '{"model": ');
  assert.equal(garbage.status, 400);
  assert.equal(((await garbage.json()) as Json).error.type, 'invalid_request_error');
  const noMessages = await post(`${baseUrl}/chat/completions`, { model: 'sim-small' });
  assert.equal(noMessages.status, 400);
  assert.equal(((await noMessages.json()) as Json).error.param, 'messages');
});

test('bad_json fault breaks the body (non-stream) or one event (stream)', async (t) => {
  const { baseUrl } = await startSim(t);
  const res = await post(`${baseUrl}/chat/completions`, chat('sim-small', { x_sim: { fault: 'bad_json' } }));
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /application\/json/);
  await assert.rejects(res.json(), SyntaxError);

  const badStream = chat('sim-small', { stream: true, x_sim: { fault: 'bad_json' } });
  const events = sseData(await (await post(`${baseUrl}/chat/completions`, badStream)).text());
  assert.equal(events.length, 3);
  assert.equal((JSON.parse(events[0]) as Json).object, 'chat.completion.chunk');
  assert.throws(() => JSON.parse(events[1]), SyntaxError);
  assert.equal(events[2], '[DONE]');
});

test('reset fault destroys the socket so fetch rejects, without a client abort', async (t) => {
  const { baseUrl, sim } = await startSim(t);
  await assert.rejects(post(`${baseUrl}/chat/completions`, chat('sim-small', { x_sim: { fault: 'reset' } })), TypeError);
  await until(() => sim.stats.inFlight === 0, 'reset request closed');
  assert.equal(sim.stats.clientAborts, 0);
  assert.equal(sim.stats.completed, 0);
});

test('stall fault sends stallAfterChunks words and never finishes the stream', async (t) => {
  // With no chunk interval a stream that failed to stall would be complete before the abort below.
  const { baseUrl, sim } = await startSim(t, { chunkIntervalMs: 0 });
  const controller = new AbortController();
  const body = chat('sim-small', { stream: true, x_sim: { fault: 'stall', stallAfterChunks: 2, chunks: 5 } });
  const res = await post(`${baseUrl}/chat/completions`, body, { signal: controller.signal });
  const events = await readEvents(res, 3);
  assert.deepEqual(events.map((e) => (JSON.parse(e) as Json).choices[0].delta.content), ['', 'word1 ', 'word2 ']);
  assert.equal(sim.stats.inFlight, 1);
  controller.abort();
  await sim.waitForClientAborts(1, 5000);
  assert.equal(sim.stats.completed, 0);
});

test('stop() resolves while a hang is open and the hanging fetch fails', async (t) => {
  const { baseUrl, sim } = await startSim(t);
  const hanging = post(`${baseUrl}/chat/completions`, hang());
  const hangingFails = assert.rejects(hanging, TypeError);
  await until(() => sim.stats.running === 1, 'hang request running');
  await sim.stop();
  assert.equal(sim.stats.inFlight, 0);
  assert.equal(sim.stats.clientAborts, 0);
  await hangingFails;
  await sim.stop();
  await assert.rejects(fetch(`${baseUrl}/models`), TypeError);
});
