import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { UpstreamSimulator } from './simulator';
import { outputTokens } from './simulator.output';
import { embeddingVector } from './simulator.responses';

type Json = Record<string, any>;

async function startSim(t: TestContext) {
  const sim = new UpstreamSimulator({ latencyMs: 0, chunkIntervalMs: 1, defaultChunks: 4 });
  const { baseUrl } = await sim.start(0);
  t.after(() => sim.stop());
  return { sim, baseUrl };
}

const post = (url: string, body: unknown) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });

/** SSE blocks as `{event, data}`; `data` parsed unless it is `[DONE]`. */
async function sse(res: Response): Promise<Array<{ event?: string; data: any }>> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block !== '')
    .map((block) => {
      const lines = block.split('\n');
      const data = lines.find((l) => l.startsWith('data: '))!.slice(6);
      return { event: lines.find((l) => l.startsWith('event: '))?.slice(7), data: data === '[DONE]' ? data : JSON.parse(data) };
    });
}

const messages = [{ role: 'user', content: 'hello there' }];
const weather = { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 1, maximum: 3 } }, required: ['city', 'days'] };
const chatTools = [{ type: 'function', function: { name: 'get_weather', parameters: weather } }];

test('GET /v1/models/{id} answers the model object, 404 model_not_found otherwise', async (t) => {
  const { baseUrl } = await startSim(t);
  const found = await fetch(`${baseUrl}/models/sim-large`);
  assert.equal(found.status, 200);
  assert.deepEqual(await found.json(), { id: 'sim-large', object: 'model', created: 1_700_000_000, owned_by: 'bulwark-sim' });
  const missing = await fetch(`${baseUrl}/models/nope`);
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as Json).error.code, 'model_not_found');
});

test('chat answers n choices, counted in usage', async (t) => {
  const { baseUrl } = await startSim(t);
  const body = (await (await post(`${baseUrl}/chat/completions`, { model: 'sim-small', messages, n: 3 })).json()) as Json;
  assert.deepEqual(body.choices.map((c: Json) => [c.index, c.message.content]), [0, 1, 2].map((i) => [i, 'word1 word2 word3 word4 ']));
  assert.deepEqual(body.usage, { prompt_tokens: 2, completion_tokens: 12, total_tokens: 14 });
  const bad = await post(`${baseUrl}/chat/completions`, { model: 'sim-small', messages, n: 0 });
  assert.equal(bad.status, 400);
});

test('a streamed chat of n choices carries every choice to its finish', async (t) => {
  const { baseUrl } = await startSim(t);
  const events = await sse(await post(`${baseUrl}/chat/completions`, { model: 'sim-small', messages, n: 2, stream: true }));
  assert.equal(events.at(-1)!.data, '[DONE]');
  for (const index of [0, 1]) {
    const mine = events.slice(0, -1).flatMap((e) => e.data.choices).filter((c: Json) => c.index === index);
    assert.equal(mine.map((c: Json) => c.delta.content ?? '').join(''), 'word1 word2 word3 word4 ');
    assert.equal(mine.at(-1).finish_reason, 'stop');
  }
});

test('chat calls a tool, plain and streamed as argument deltas', async (t) => {
  const { baseUrl } = await startSim(t);
  const request = { model: 'sim-small', messages, tools: chatTools };
  const plain = (await (await post(`${baseUrl}/chat/completions`, request)).json()) as Json;
  const choice = plain.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.content, null);
  const call = choice.message.tool_calls[0];
  assert.equal(call.function.name, 'get_weather');
  const args = JSON.parse(call.function.arguments);
  assert.equal(typeof args.city, 'string');
  assert.ok([1, 2, 3].includes(args.days));
  assert.equal(plain.usage.completion_tokens, outputTokens(call.function.arguments));

  const events = await sse(await post(`${baseUrl}/chat/completions`, { ...request, stream: true }));
  const deltas = events.slice(0, -1).map((e) => e.data.choices[0]?.delta);
  assert.equal(deltas[0].tool_calls[0].id, call.id);
  assert.equal(deltas[0].tool_calls[0].function.name, 'get_weather');
  const pieces = deltas.flatMap((d: Json | undefined) => d?.tool_calls?.map((c: Json) => c.function.arguments) ?? []);
  assert.ok(pieces.filter(Boolean).length > 1);
  assert.equal(pieces.join(''), call.function.arguments);
  assert.equal(events.at(-2)!.data.choices[0].finish_reason, 'tool_calls');
});

test('chat answers JSON for response_format json_object and json_schema', async (t) => {
  const { baseUrl } = await startSim(t);
  const object = (await (await post(`${baseUrl}/chat/completions`, { model: 'sim-small', messages, response_format: { type: 'json_object' } })).json()) as Json;
  assert.equal(typeof JSON.parse(object.choices[0].message.content), 'object');
  const format = { type: 'json_schema', json_schema: { name: 'weather', schema: weather, strict: true } };
  const schema = (await (await post(`${baseUrl}/chat/completions`, { model: 'sim-small', messages, response_format: format })).json()) as Json;
  const content = schema.choices[0].message.content;
  assert.deepEqual(Object.keys(JSON.parse(content)), ['city', 'days']);
  assert.equal(schema.usage.completion_tokens, outputTokens(content));
});

test('embeddings answer base64 float32 vectors when asked, and refuse an unknown encoding', async (t) => {
  const { baseUrl } = await startSim(t);
  const body = (await (await post(`${baseUrl}/embeddings`, { model: 'sim-small', input: ['a b', 'c'], encoding_format: 'base64' })).json()) as Json;
  const decoded = body.data.map((d: Json) => [...new Float32Array(new Uint8Array(Buffer.from(d.embedding, 'base64')).buffer)]);
  assert.deepEqual(decoded, ['a b', 'c'].map((text) => embeddingVector(text).map(Math.fround)));
  assert.equal((await post(`${baseUrl}/embeddings`, { model: 'sim-small', input: 'x', encoding_format: 'hex' })).status, 400);
});

test('/v1/responses answers a response object; max_output_tokens makes it incomplete', async (t) => {
  const { baseUrl } = await startSim(t);
  const body = (await (await post(`${baseUrl}/responses`, { model: 'sim-small', input: 'hello there', instructions: 'be brief' })).json()) as Json;
  assert.match(body.id, /^resp_/);
  assert.equal(body.object, 'response');
  assert.equal(body.status, 'completed');
  assert.equal(body.output[0].type, 'message');
  assert.equal(body.output[0].content[0].text, 'word1 word2 word3 word4 ');
  assert.deepEqual([body.usage.input_tokens, body.usage.output_tokens, body.usage.total_tokens], [4, 4, 8]);
  const cut = (await (await post(`${baseUrl}/responses`, { model: 'sim-small', input: 'hi', max_output_tokens: 2 })).json()) as Json;
  assert.equal(cut.status, 'incomplete');
  assert.deepEqual(cut.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(cut.output[0].content[0].text, 'word1 word2 ');
  assert.equal((await post(`${baseUrl}/responses`, { model: 'sim-small' })).status, 400);
});

test('/v1/responses streams named events in sequence, without [DONE]', async (t) => {
  const { baseUrl } = await startSim(t);
  const events = await sse(await post(`${baseUrl}/responses`, { model: 'sim-small', input: 'hello', stream: true }));
  for (const [i, e] of events.entries()) {
    assert.equal(e.event, e.data.type);
    assert.equal(e.data.sequence_number, i);
  }
  assert.deepEqual(events.slice(0, 4).map((e) => e.event), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
  const text = events.filter((e) => e.event === 'response.output_text.delta').map((e) => e.data.delta).join('');
  assert.equal(text, 'word1 word2 word3 word4 ');
  const last = events.at(-1)!;
  assert.equal(last.event, 'response.completed');
  assert.equal(last.data.response.output[0].content[0].text, text);
});

test('/v1/responses calls a tool, streamed as function_call_arguments deltas', async (t) => {
  const { baseUrl } = await startSim(t);
  const tools = [{ type: 'function', name: 'get_weather', parameters: weather }];
  const events = await sse(await post(`${baseUrl}/responses`, { model: 'sim-small', input: 'weather?', tools, stream: true }));
  const args = events.filter((e) => e.event === 'response.function_call_arguments.delta').map((e) => e.data.delta).join('');
  const item = events.find((e) => e.event === 'response.output_item.done')!.data.item;
  assert.deepEqual([item.type, item.name, item.arguments], ['function_call', 'get_weather', args]);
  assert.deepEqual(Object.keys(JSON.parse(args)), ['city', 'days']);
  const plain = (await (await post(`${baseUrl}/responses`, { model: 'sim-small', input: 'weather?', tools })).json()) as Json;
  assert.equal(plain.output[0].arguments, args);
  assert.equal(plain.output[0].call_id, item.call_id);
});
