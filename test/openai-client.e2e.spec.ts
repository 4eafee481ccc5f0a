import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { words } from './support/http';
import { GatewayStack, startStack } from './support/stack';

const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Say hello' }];

/** A request body with fields the SDK's types do not know (vLLM extras, the simulator's x_sim). */
function withExtras<T>(body: T, extras: Record<string, unknown>): T {
  return { ...body, ...extras } as T;
}

/** The APIError `promise` rejects with; fails the test if it resolves or rejects with anything else. */
async function apiError(promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof OpenAI.APIError, `expected an OpenAI.APIError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the call to fail');
}

describe('the official openai client against Bulwark', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;
  let client: OpenAI;

  before(async () => {
    ({ simulator, gateway } = stack = await startStack({ env: { REQUEST_TIMEOUT_MS: '10000', RETRY_MAX_ATTEMPTS: '1' } }));
    client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 20_000 });
  });

  after(() => stack?.stop());

  it('creates a chat completion', async () => {
    const completion = await client.chat.completions.create({ model: 'sim-small', messages, max_tokens: 5 });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, 'sim-small');
    assert.equal(completion.choices[0].message.content, words(5));
    assert.equal(completion.choices[0].finish_reason, 'length');
    assert.equal(completion.usage?.completion_tokens, 5);
  });

  it('reads the response headers through withResponse()', async () => {
    const { data, response } = await client.chat.completions.create({ model: 'sim-small', messages }).withResponse();
    assert.equal(data.choices[0].message.content, words(8));
    assert.equal(response.headers.get('x-upstream'), 'primary');
    assert.ok(response.headers.get('x-request-id'));
  });

  it('streams a chat completion whose deltas add up to the same text', async () => {
    const stream = await client.chat.completions.create({ model: 'sim-small', messages, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let chunks = 0;
    let usage: OpenAI.CompletionUsage | undefined | null;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.object, 'chat.completion.chunk');
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, words(8));
    assert.ok(chunks >= 10, `only ${chunks} chunks`);
    assert.equal(finish, 'stop');
    assert.equal(usage?.completion_tokens, 8);
  });

  it('passes extra body fields through to the upstream', async () => {
    const completion = await client.chat.completions.create(withExtras({ model: 'sim-small', messages }, { top_k: 40, x_sim: { chunks: 3 } }));
    assert.equal(completion.choices[0].message.content, words(3));
    assert.equal((simulator.stats.lastBody as { top_k?: number }).top_k, 40);
  });

  it('creates a legacy completion and embeddings', async () => {
    const completion = await client.completions.create({ model: 'sim-small', prompt: 'Say this is a test', max_tokens: 2 });
    assert.equal(completion.choices[0].text, words(2));
    const embeddings = await client.embeddings.create({ model: 'sim-small', input: ['a', 'b', 'c'] });
    assert.equal(embeddings.data.length, 3);
    assert.equal(embeddings.data[0].embedding.length, 8);
  });

  it('lists the models', async () => {
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    assert.ok(ids.includes('sim-small'), JSON.stringify(ids));
  });

  it("surfaces an upstream 400 as a BadRequestError carrying the upstream's message", async () => {
    const error = await apiError(client.chat.completions.create(withExtras({ model: 'sim-small', messages }, { x_sim: { fault: 'error', status: 400 } })));
    assert.ok(error instanceof OpenAI.BadRequestError);
    assert.equal(error.status, 400);
    assert.match(error.message, /Simulated client error 400/);
    assert.equal(error.type, 'invalid_request_error');
  });

  it('surfaces an invalid body as a 400 with code invalid_body and the param', async () => {
    const error = await apiError(client.chat.completions.create({ model: 'sim-small', messages, max_tokens: -1 }));
    assert.equal(error.status, 400);
    assert.equal(error.code, 'invalid_body');
    assert.equal(error.param, 'max_tokens');
    assert.ok(error.requestID || error.headers?.get('x-request-id'));
  });

  it('surfaces an unknown model as a NotFoundError with code model_not_found', async () => {
    const error = await apiError(client.chat.completions.create({ model: 'no-such-model', messages }));
    assert.ok(error instanceof OpenAI.NotFoundError);
    assert.equal(error.status, 404);
    assert.equal(error.code, 'model_not_found');
  });

  it('surfaces an unknown route as a NotFoundError with code route_not_found', async () => {
    const error = await apiError(client.post('/no/such/route', { body: {} }));
    assert.equal(error.status, 404);
    assert.equal(error.code, 'route_not_found');
    assert.equal(error.type, 'not_found_error');
  });

  it('surfaces an upstream failure as a 502 InternalServerError with code upstream_error', async () => {
    const error = await apiError(client.chat.completions.create(withExtras({ model: 'sim-small', messages }, { x_sim: { fault: 'error', status: 500 } })));
    assert.ok(error instanceof OpenAI.InternalServerError);
    assert.equal(error.status, 502);
    assert.equal(error.code, 'upstream_error');
    assert.equal(error.type, 'upstream_error');
  });

  it('surfaces a deadline as a 504 with code request_timeout', async () => {
    const error = await apiError(
      client.chat.completions.create(withExtras({ model: 'sim-small', messages }, { x_sim: { fault: 'hang' } }), { headers: { 'X-Request-Timeout-Ms': '300' } }),
    );
    assert.equal(error.status, 504);
    assert.equal(error.code, 'request_timeout');
    assert.equal(error.type, 'timeout_error');
  });

  it('lets the SDK retry a retryable error on its own, as x-should-retry says', async () => {
    const retrying = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 1, timeout: 20_000 });
    const calls = () => simulator.stats.requestsByPath['/v1/chat/completions'] ?? 0;
    const before = calls();
    const error = await apiError(retrying.chat.completions.create(withExtras({ model: 'sim-small', messages }, { x_sim: { fault: 'error', status: 500 } })));
    assert.equal(error.status, 502);
    assert.equal(calls(), before + 2, 'the SDK should have retried once');
    const refused = await apiError(retrying.chat.completions.create({ model: 'sim-small', messages, max_tokens: -1 }));
    assert.equal(refused.status, 400);
  });
});
