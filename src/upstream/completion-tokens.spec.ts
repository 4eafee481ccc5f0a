import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { completionTokensOf, countedEvents, StreamTokenCounter } from './completion-tokens';

describe('completion tokens', () => {
  it('reads usage.completion_tokens of a JSON answer', () => {
    assert.equal(completionTokensOf({ usage: { completion_tokens: 12 } }), 12);
    assert.equal(completionTokensOf({ usage: { completion_tokens: 'x' } }), undefined);
    assert.equal(completionTokensOf(null), undefined);
  });

  it('counts content events of a stream, and prefers its final usage chunk', async () => {
    const events = [
      '{"choices":[{"delta":{"role":"assistant","content":""}}]}',
      '{"choices":[{"delta":{"content":"a"}}]}',
      '{"choices":[{"delta":{"content":"b"}}]}',
      '{"choices":[{"delta":{},"finish_reason":"stop"}]}',
      '[DONE]',
    ];
    const counter = new StreamTokenCounter();
    const seen: string[] = [];
    for await (const event of countedEvents((async function* () { yield* events; })(), counter)) seen.push(event);
    assert.deepEqual(seen, events, 'events pass unchanged');
    assert.equal(counter.tokens, 3);
    counter.observe('{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}');
    assert.equal(counter.tokens, 2);
  });
});
