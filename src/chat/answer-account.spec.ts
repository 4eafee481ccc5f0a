import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stampServiceTier } from './answer-account';

describe('stampServiceTier', () => {
  it('adds service_tier to chat and completions chunks, replaces an upstream one, and leaves errors alone', () => {
    const chunk = '{"id":"c1","object":"chat.completion.chunk","choices":[{"delta":{"content":"hi"}}]}';
    const stamped = stampServiceTier(chunk, 'flex', false);
    assert.deepEqual(JSON.parse(stamped), { service_tier: 'flex', ...JSON.parse(chunk) });
    const fromOpenAi = '{"id":"c1","service_tier":"default","choices":[]}';
    assert.deepEqual(JSON.parse(stampServiceTier(fromOpenAi, 'priority', false)), { id: 'c1', service_tier: 'priority', choices: [] });
    assert.equal(stampServiceTier('{"service_tier":null}', 'flex', false), '{"service_tier":"flex"}');
    assert.equal(stampServiceTier('{}', 'flex', false), '{"service_tier":"flex"}');
    assert.equal(stampServiceTier('{"error":{"message":"x"}}', 'flex', false), '{"error":{"message":"x"}}');
    assert.equal(stampServiceTier('[DONE]', 'flex', false), '[DONE]');
    const content = '{"choices":[{"delta":{"content":"say \\"service_tier\\": no"}}]}';
    assert.equal(JSON.parse(stampServiceTier(content, 'flex', false)).choices[0].delta.content, 'say "service_tier": no', 'text inside strings is untouched');
  });

  it('stamps only the response object of Responses API events', () => {
    const created = '{"type":"response.created","response":{"id":"r1","status":"in_progress"}}';
    assert.equal(JSON.parse(stampServiceTier(created, 'flex', true)).response.service_tier, 'flex');
    assert.equal(JSON.parse(stampServiceTier('{"type":"response.created","response":{}}', 'flex', true)).response.service_tier, 'flex');
    const delta = '{"type":"response.output_text.delta","delta":"a"}';
    assert.equal(stampServiceTier(delta, 'flex', true), delta);
  });
});
