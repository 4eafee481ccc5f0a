import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InferencePayload } from '../upstream/upstream.types';
import { affinityKeyOf, canonicalPrompt, prefixChain } from './prefix-chain';

const chat = (messages: unknown[], extra: Record<string, unknown> = {}, affinityKey?: string): InferencePayload => ({
  path: '/chat/completions',
  model: 'm',
  body: { model: 'm', messages, ...extra },
  stream: false,
  ...(affinityKey ? { affinityKey } : {}),
});
const long = (tag: string) => `${tag} `.repeat(40);

describe('prefixChain', () => {
  it('gives the next turn of a conversation the same leading hashes', () => {
    const turn1 = [{ role: 'system', content: long('sys') }, { role: 'user', content: long('q1') }];
    const turn2 = [...turn1, { role: 'assistant', content: long('a1') }, { role: 'user', content: long('q2') }];
    const first = prefixChain(chat(turn1), 32);
    const second = prefixChain(chat(turn2), 32);
    const whole = Math.floor(canonicalPrompt(chat(turn1)).length / 32);
    assert.ok(whole >= 4);
    assert.deepEqual(second.slice(0, whole), first.slice(0, whole), 'every whole block of turn 1 is shared');
    assert.ok(second.length > first.length);
    assert.ok(second.every((h) => /^[0-9a-f]{16}$/.test(h)));
  });

  it('differs from the first block on when the model or an earlier block differs', () => {
    const messages = [{ role: 'user', content: long('same') }];
    const a = prefixChain(chat(messages), 32);
    const b = prefixChain({ ...chat(messages), model: 'other' }, 32);
    assert.notEqual(a[0], b[0]);
    const c = prefixChain(chat([{ role: 'user', content: `x${long('same')}` }]), 32);
    assert.ok(a.every((h, i) => h !== c[i]), 'a chain: a change in block 1 changes every later hash');
  });

  it('ignores the key order of tools and is the same for equal prompts', () => {
    const tools = [{ type: 'function', function: { name: 'f', parameters: { b: 1, a: 2 } } }];
    const swapped = [{ function: { parameters: { a: 2, b: 1 }, name: 'f' }, type: 'function' }];
    assert.deepEqual(prefixChain(chat([{ role: 'user', content: 'hi' }], { tools }), 16), prefixChain(chat([{ role: 'user', content: 'hi' }], { tools: swapped }), 16));
  });

  it('puts the affinity key first: prompt_cache_key, else user, else X-Session-Id', () => {
    const messages = [{ role: 'user', content: long('same') }];
    assert.equal(affinityKeyOf(chat(messages, { prompt_cache_key: 'k', user: 'u' }, 's')), 'k');
    assert.equal(affinityKeyOf(chat(messages, { user: 'u' }, 's')), 'u');
    assert.equal(affinityKeyOf(chat(messages, {}, 's')), 's');
    assert.equal(affinityKeyOf(chat(messages)), undefined);
    const keyed = prefixChain(chat(messages, { user: 'u' }), 32);
    const plain = prefixChain(chat(messages), 32);
    assert.equal(keyed.length, plain.length + 1, 'the key is one more block, in front');
    assert.notEqual(keyed[1], plain[0]);
    assert.equal(prefixChain(chat([{ role: 'user', content: 'x' }], {}, 'session-1'), 32)[0], prefixChain(chat([{ role: 'user', content: 'y' }], {}, 'session-1'), 32)[0]);
  });

  it('reads the Responses API (instructions, then input) and completions prompts', () => {
    const responses: InferencePayload = { path: '/responses', model: 'm', body: { instructions: 'be brief', input: 'hello' }, stream: false };
    assert.equal(canonicalPrompt(responses), 'system\nbe brief\n\u0000user\nhello');
    assert.equal(canonicalPrompt({ path: '/completions', body: { prompt: 'once' } }), 'once');
    assert.deepEqual(prefixChain({ path: '/embeddings', model: 'm', body: { input: 'x' } }, 16), []);
  });
});
