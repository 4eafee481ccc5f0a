import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { expectErrorShape, getJson, postJson, send, words } from './support/http';
import { GatewayStack, startStack } from './support/stack';
import { waitFor } from './support/wait';

/** One SSE event block as written on the wire: its `event:` name (if any) and its parsed `data`. */
interface WireEvent {
  event: string | undefined;
  data: any;
}

/** Splits an SSE text into its event blocks; `[DONE]` stays a string. */
function wireEvents(text: string): WireEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const lines = block.split('\n');
      const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
      const data = lines.find((l) => l.startsWith('data: '))!.slice(6);
      return { event, data: data === '[DONE]' ? data : JSON.parse(data) };
    });
}

describe('POST /v1/responses through the pipeline', () => {
  let stack: GatewayStack;
  let url: string;

  before(async () => {
    stack = await startStack({
      simulator: { latencyMs: 5, chunkIntervalMs: 5, models: ['sim-small', 'sim-large', 'org/model-7b'] },
      env: { REQUEST_TIMEOUT_MS: '10000', RETRY_MAX_ATTEMPTS: '1', STREAM_IDLE_TIMEOUT_MS: '500' },
    });
    url = `${stack.url}/v1/responses`;
  });

  after(() => stack?.stop());

  it('answers a response object and passes unknown fields through to the upstream', async () => {
    const res = await postJson(url, { model: 'sim-small', input: 'hello there', metadata: { team: 'a' }, vendor_extra: { top_k: 3 } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'response');
    assert.equal(res.json.output[0].content[0].text, words(8));
    assert.equal(res.headers.get('x-upstream'), 'primary');
    assert.deepEqual((stack.simulator.stats.lastBody as any).vendor_extra, { top_k: 3 });
  });

  it('relays a stream with an event: line named by each event type, and no [DONE]', async () => {
    const response = await send(url, { method: 'POST', body: { model: 'sim-small', input: 'hello', stream: true } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
    const events = wireEvents(await response.text());
    for (const { event, data } of events) assert.equal(event, data.type);
    assert.equal(events[0].event, 'response.created');
    assert.equal(events.at(-1)!.event, 'response.completed');
    assert.ok(!events.some((e) => e.data === '[DONE]'));
    assert.deepEqual(events.map((e) => e.data.sequence_number), events.map((_, i) => i));
  });

  it('ends a stream that stalls after its first byte with the Responses error event', async () => {
    const response = await send(url, { method: 'POST', body: { model: 'sim-small', input: 'hello', stream: true, x_sim: { fault: 'stall', stallAfterChunks: 2 } } });
    assert.equal(response.status, 200);
    const events = wireEvents(await response.text());
    const deltas = events.filter((e) => e.event === 'response.output_text.delta');
    assert.equal(deltas.length, 2, 'the events before the stall were relayed');
    const last = events.at(-1)!;
    assert.equal(last.event, 'error');
    assert.deepEqual(Object.keys(last.data).sort(), ['code', 'message', 'param', 'sequence_number', 'type']);
    assert.equal(last.data.type, 'error');
    assert.equal(last.data.code, 'request_timeout');
    assert.match(last.data.message, /silent/);
    assert.equal(last.data.sequence_number, events.at(-2)!.data.sequence_number + 1);
    assert.ok(!events.some((e) => e.data === '[DONE]'));
  });

  it('surfaces that error event to the openai client as an APIError', async () => {
    const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 });
    const stream = await client.responses.create({ model: 'sim-small', input: 'hello', stream: true, x_sim: { fault: 'stall', stallAfterChunks: 1 } } as OpenAI.Responses.ResponseCreateParamsStreaming);
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const event of stream) seen.push(event.type);
      })(),
      (error: unknown) => error instanceof OpenAI.APIError && /silent/.test(error.message),
    );
    assert.ok(seen.includes('response.output_text.delta'));
  });

  it('turns a request into a job with Prefer: respond-async, its stored result a response object', async () => {
    const res = await postJson(url, { model: 'sim-small', input: 'hello', stream: true }, { prefer: 'respond-async' });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.headers.get('location'), `/v1/jobs/${res.json.id}`);
    const job = await waitFor('the job to complete', async () => {
      const view = (await getJson(`${stack.url}/v1/jobs/${res.json.id}`)).json;
      return view.status === 'completed' ? view : undefined;
    });
    assert.equal(job.result.object, 'response');
    assert.equal(job.result.output[0].content[0].text, words(8));
  });

  it('refuses a body of the wrong shape in the contract error shape', async () => {
    const res = await postJson(url, { model: 'sim-small', input: 5 });
    assert.equal(res.status, 400);
    const error = expectErrorShape(res.json);
    assert.equal(error.code, 'invalid_body');
    assert.equal(error.param, 'input');
  });

  it('answers GET /v1/models/{id} in the contract shape, 404 model_not_found for an unknown id', async () => {
    const found = await getJson(`${stack.url}/v1/models/sim-large`);
    assert.equal(found.status, 200);
    assert.deepEqual([found.json.id, found.json.object], ['sim-large', 'model']);
    const missing = await getJson(`${stack.url}/v1/models/not-served`);
    assert.equal(missing.status, 404);
    assert.equal(expectErrorShape(missing.json).code, 'model_not_found');
    for (const path of ['org/model-7b', 'org%2Fmodel-7b']) {
      const owned = await getJson(`${stack.url}/v1/models/${path}`);
      assert.equal(owned.status, 200, `${path}: ${owned.text}`);
      assert.equal(owned.json.id, 'org/model-7b');
    }
    assert.equal(expectErrorShape((await getJson(`${stack.url}/v1/models/org/other`)).json).code, 'model_not_found');
  });
});
