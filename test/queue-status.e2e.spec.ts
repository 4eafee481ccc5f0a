import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { chatBody, parseSse, postJson, send, words } from './support/http';
import { GatewayStack, startStack } from './support/stack';
import { waitFor } from './support/wait';

describe('X-Queue-Status: comments', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;

  before(async () => {
    ({ simulator } = stack = await startStack({ env: { MAX_CONCURRENT_REQUESTS: '1', QUEUE_REJECTION_THRESHOLD: '1', RETRY_MAX_ATTEMPTS: '1' } }));
  });

  after(() => stack?.stop());

  /** Holds the one slot with a slow request; resolves once it runs, with the request's own answer to await later. */
  async function busySlot(latencyMs: number) {
    const blocker = postJson(`${stack.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs } }));
    await waitFor('the slot to be busy', () => simulator.stats.running === 1);
    // Wrapped: an async function returning the promise itself would wait for the answer.
    return { answer: blocker };
  }

  it('a waiting stream hears where it stands as SSE comments before its first chunk', async () => {
    const { answer: blocker } = await busySlot(2500);
    const response = await send(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'x-queue-status': 'comments' },
      body: chatBody({ stream: true, x_sim: { chunks: 3 } }),
      timeoutMs: 20_000,
    });
    assert.equal(response.status, 200);
    const text = await response.text();
    const firstData = text.indexOf('data: ');
    const comments = text.slice(0, firstData).split('\n').filter((l) => l.startsWith(': queued'));
    assert.ok(comments.length >= 2, `comments before the first chunk: ${JSON.stringify(text.slice(0, firstData))}`);
    assert.match(comments[0], /^: queued position=1 wait_ms=\d+$/);
    const events = parseSse(text);
    assert.equal(events.at(-1), '[DONE]');
    assert.equal((await blocker).status, 200);
  });

  it('changes nothing without the header, and the openai client parses a stream with comments', async () => {
    const { answer: blocker } = await busySlot(1500);
    const plain = await send(`${stack.url}/v1/chat/completions`, { method: 'POST', body: chatBody({ stream: true, x_sim: { chunks: 2 } }), timeoutMs: 20_000 });
    assert.doesNotMatch(await plain.text(), /: queued/);
    await blocker;
    const { answer: blocker2 } = await busySlot(1500);
    const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'unused', maxRetries: 0, defaultHeaders: { 'x-queue-status': 'comments' } });
    const stream = await client.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: 'hi' }], stream: true, x_sim: { chunks: 4 } } as never);
    let text = '';
    for await (const chunk of stream as unknown as AsyncIterable<{ choices: { delta?: { content?: string } }[] }>) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, words(4));
    await blocker2;
  });

  it('a waiting stream whose deadline passes ends with an SSE error event, then [DONE]', async () => {
    // Long enough a wait that the deadline passes in the queue; short enough an estimate (what is left of
    // a learned service time, and a one-token answer of its own) that admission lets it in rather than
    // refusing it as deadline_unreachable.
    const { answer: blocker } = await busySlot(4000);
    const response = await send(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'x-queue-status': 'comments', 'x-request-timeout-ms': '2000' },
      body: chatBody({ stream: true, max_tokens: 1 }),
      timeoutMs: 20_000,
    });
    const text = await response.text();
    assert.equal(response.status, 200, text);
    const events = parseSse(text);
    assert.equal(events.at(-1), '[DONE]');
    assert.equal(JSON.parse(events.at(-2)!).error.code, 'queue_timeout');
    await blocker;
  });
});
