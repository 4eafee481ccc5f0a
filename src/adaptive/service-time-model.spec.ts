import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MIN_SAMPLES, requestSize, ServiceTimeModel } from './service-time-model';

describe('ServiceTimeModel', () => {
  it('gives no estimate before it has learned enough calls (cold start refuses nobody)', () => {
    const model = new ServiceTimeModel();
    for (let i = 0; i < MIN_SAMPLES - 1; i++) {
      model.record({ durationMs: 1100, timeToFirstTokenMs: 100, completionTokens: 100 });
      assert.equal(model.estimateMs({ maxTokens: 1000 }), undefined);
    }
    model.record({ durationMs: 1100, timeToFirstTokenMs: 100, completionTokens: 100 });
    assert.equal(model.estimateMs({ maxTokens: 1000 }), 100 + 1000 * 10);
  });

  it("splits a stream's time into first token and per-token rate, and sizes by max_tokens else the usual length", () => {
    const model = new ServiceTimeModel();
    for (let i = 0; i < MIN_SAMPLES; i++) model.record({ durationMs: 250, timeToFirstTokenMs: 50, completionTokens: 40 });
    assert.equal(model.estimateMs({ maxTokens: 5 }), 50 + 5 * 5);
    assert.equal(model.estimateMs({}), 50 + 40 * 5);
    assert.equal(model.averageOutputTokens, 40);
  });

  it('takes the learned first-token time off JSON answers, and a long prompt lengthens it a little', () => {
    const model = new ServiceTimeModel();
    model.record({ durationMs: 120, timeToFirstTokenMs: 100, completionTokens: 10 });
    for (let i = 0; i < MIN_SAMPLES; i++) model.record({ durationMs: 120, completionTokens: 10 });
    assert.equal(model.predictMs(10), 100 + 10 * 2);
    assert.equal(model.predictMs(10, 8192), 200 + 10 * 2);
    assert.equal(model.predictMs(10, 1_000_000), 200 + 10 * 2, 'capped');
  });

  it('moves towards new samples as an EWMA and ignores calls without a token count', () => {
    const model = new ServiceTimeModel();
    for (let i = 0; i < MIN_SAMPLES; i++) model.record({ durationMs: 100, completionTokens: 10 });
    model.record({ durationMs: 5000, completionTokens: 0 });
    model.record({ durationMs: 5000 });
    assert.equal(model.sampleCount, MIN_SAMPLES);
    model.record({ durationMs: 1100, completionTokens: 10 });
    const perToken = 0.2 * 110 + 0.8 * 10;
    assert.ok(Math.abs((model.predictMs(10) ?? 0) - 10 * perToken) < 1e-9);
  });
});

describe('ServiceTimeModel: JSON answers of varied sizes', () => {
  it('learns the fixed part apart from the per-token rate, so one slow short call does not price a long one', () => {
    const model = new ServiceTimeModel();
    // A cold first call (800 ms for 50 tokens), then calls at 2 ms per token plus about 50 ms.
    model.record({ durationMs: 800, completionTokens: 50 });
    model.record({ durationMs: 2050, completionTokens: 1000 });
    model.record({ durationMs: 150, completionTokens: 50 });
    const large = model.estimateMs({ maxTokens: 1000 }) ?? 0;
    const small = model.estimateMs({ maxTokens: 50 }) ?? 0;
    assert.ok(large > 1500 && large < 2600, `large ${large}`);
    assert.ok(small < 800, `small ${small}`);
    assert.ok(large > small);
  });
});

describe('requestSize', () => {
  it('reads the first output-token limit and approximates prompt tokens from chat, prompt or input', () => {
    assert.deepEqual(requestSize({ max_tokens: 1000, messages: [{ role: 'user', content: 'x'.repeat(400) }] }), { maxTokens: 1000, promptTokens: 100 });
    assert.deepEqual(requestSize({ max_completion_tokens: 7, prompt: 'abcd' }), { maxTokens: 7, promptTokens: 1 });
    assert.deepEqual(requestSize({ max_output_tokens: 9, messages: [{ content: [{ type: 'text', text: 'abcdefgh' }] }] }), { maxTokens: 9, promptTokens: 2 });
    assert.deepEqual(requestSize({ max_tokens: 'many', input: ['ab', 'cd'] }), { maxTokens: undefined, promptTokens: 1 });
    assert.deepEqual(requestSize(undefined), {});
  });
});
