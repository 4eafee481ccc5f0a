import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import OpenAI from 'openai';
import { UpstreamSimulator } from './simulator';
import { PrefixCache, promptWords, StallSchedule } from './simulator.prefix-cache';

const words = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `w${from + i}`);

describe('PrefixCache', () => {
  it('finds the longest cached prefix in whole blocks and caches every whole block of the prompt', () => {
    const cache = new PrefixCache(1000, 4);
    assert.equal(cache.admit(words(10)), 0, 'a cold cache holds nothing');
    assert.equal(cache.cachedTokens, 8, 'two whole blocks cached; the partial one is not');
    assert.equal(cache.admit([...words(10), ...words(6, 100)]), 8, 'the next turn finds the previous one');
    assert.equal(cache.admit(['other', ...words(10)]), 0, 'a block depends on every token before it');
    assert.deepEqual([cache.queries, cache.hits], [10 + 16 + 11, 8]);
  });

  it('evicts the least recently used blocks past its capacity', () => {
    const cache = new PrefixCache(8, 4);
    cache.admit(words(8, 0));
    cache.admit(words(8, 50));
    assert.equal(cache.cachedTokens, 8);
    assert.equal(cache.admit(words(8, 0)), 0, 'the older prompt was evicted');
    assert.equal(cache.admit(words(8, 0)), 8);
  });

  it('is off at capacity 0', () => {
    const cache = new PrefixCache(0, 4);
    assert.equal(cache.admit(words(8)), 0);
    assert.equal(cache.enabled, false);
    assert.equal(cache.queries, 0);
  });

  it('reads chat, responses and completion prompts as the words usage counts', () => {
    assert.deepEqual(promptWords('chat', { messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'hi there' }] }] }), ['be', 'brief', 'hi', 'there']);
    assert.deepEqual(promptWords('responses', { instructions: 'be brief', input: 'hi' }), ['be', 'brief', 'hi']);
    assert.deepEqual(promptWords('completion', { prompt: 'once upon' }), ['once', 'upon']);
  });
});

describe('StallSchedule', () => {
  it('stalls the given share of calls, spread evenly', () => {
    const schedule = new StallSchedule();
    const stalled = Array.from({ length: 100 }, () => schedule.next(0.1)).filter(Boolean).length;
    assert.equal(stalled, 10);
    assert.equal(new StallSchedule().next(0), false);
  });
});

describe('UpstreamSimulator prefix cache', () => {
  it('reports cached prompt tokens in usage (chat, stream usage chunk, responses) and on /metrics', async (t) => {
    const sim = new UpstreamSimulator({ latencyMs: 0, chunkIntervalMs: 0, prefixCacheTokens: 10_000, blockTokens: 4 });
    const { baseUrl } = await sim.start();
    t.after(() => sim.stop());
    const client = new OpenAI({ baseURL: baseUrl, apiKey: 'x', maxRetries: 0 });
    const history = [{ role: 'user' as const, content: words(12).join(' ') }];
    const first = await client.chat.completions.create({ model: 'sim-small', messages: history });
    assert.equal(first.usage?.prompt_tokens_details?.cached_tokens, 0);
    const next = [...history, { role: 'assistant' as const, content: 'ok' }, { role: 'user' as const, content: 'and more' }];
    const second = await client.chat.completions.create({ model: 'sim-small', messages: next });
    assert.equal(second.usage?.prompt_tokens_details?.cached_tokens, 12);
    const stream = await client.chat.completions.create({ model: 'sim-small', messages: next, stream: true, stream_options: { include_usage: true } });
    let last: OpenAI.Chat.Completions.ChatCompletionChunk | undefined;
    for await (const chunk of stream) last = chunk;
    assert.equal(last?.usage?.prompt_tokens_details?.cached_tokens, 12, 'the prompt has 15 tokens: three whole blocks cached');
    const response = await client.responses.create({ model: 'sim-small', input: words(12).join(' ') });
    assert.equal(response.usage?.input_tokens_details.cached_tokens, 12);
    const metrics = await (await fetch(`${new URL(baseUrl).origin}/metrics`)).text();
    assert.match(metrics, /^vllm:prefix_cache_queries 54$/m);
    assert.match(metrics, /^vllm:prefix_cache_hits 36$/m);
    assert.match(metrics, /^vllm:kv_cache_usage_perc\{model_name="sim-small"\} 0$/m);
    assert.deepEqual([sim.stats.prefixCacheQueries, sim.stats.prefixCacheHits], [54, 36]);
  });

  it('leaves usage as it was without a prefix cache, and stalls the configured share of calls', async (t) => {
    const sim = new UpstreamSimulator({ latencyMs: 0, stall: { share: 0.5, ms: 1 } });
    const { baseUrl } = await sim.start();
    t.after(() => sim.stop());
    const client = new OpenAI({ baseURL: baseUrl, apiKey: 'x', maxRetries: 0 });
    for (let i = 0; i < 4; i++) {
      const answer = await client.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(answer.usage?.prompt_tokens_details, undefined);
    }
    assert.equal(sim.stats.stalled, 2);
  });
});
