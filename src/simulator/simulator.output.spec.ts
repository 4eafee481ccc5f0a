import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { outputTokens, planOutput, splitPieces } from './simulator.output';

const parameters = { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city', 'days'] };
const chatTools = [
  { type: 'function', function: { name: 'first', parameters } },
  { type: 'function', function: { name: 'second', parameters: { type: 'object', properties: { on: { type: 'boolean' } } } } },
];
const responsesTools = [{ type: 'function', name: 'lookup', parameters }];
const user = [{ role: 'user', content: 'hi' }];

describe('planOutput', () => {
  it('answers words, cut at the token limit', () => {
    assert.deepEqual(planOutput('chat', { messages: user }, 0, 3, undefined), {
      kind: 'text',
      text: 'word1 word2 word3 ',
      pieces: ['word1 ', 'word2 ', 'word3 '],
      finish: 'stop',
    });
    const cut = planOutput('chat', { messages: user }, 0, 8, 2);
    assert.equal(cut.kind === 'text' && cut.finish, 'length');
    assert.equal(cut.kind === 'text' && cut.text, 'word1 word2 ');
  });

  it('calls the first tool under auto, the named one when asked, none under none', () => {
    const auto = planOutput('chat', { messages: user, tools: chatTools }, 0, 4, undefined);
    assert.equal(auto.kind, 'tool_call');
    assert.equal(auto.kind === 'tool_call' && auto.name, 'first');
    const args = JSON.parse(auto.kind === 'tool_call' ? auto.arguments : '');
    assert.equal(typeof args.city, 'string');
    assert.ok(Number.isInteger(args.days));
    assert.equal(auto.kind === 'tool_call' && auto.pieces.join(''), auto.kind === 'tool_call' && auto.arguments);
    const named = planOutput('chat', { messages: user, tools: chatTools, tool_choice: { type: 'function', function: { name: 'second' } } }, 0, 4, undefined);
    assert.equal(named.kind === 'tool_call' && named.name, 'second');
    assert.equal(planOutput('chat', { messages: user, tools: chatTools, tool_choice: 'none' }, 0, 4, undefined).kind, 'text');
  });

  it("answers in text under auto once the last turn is a tool's result, but still calls under required", () => {
    const messages = [...user, { role: 'assistant', tool_calls: [] }, { role: 'tool', tool_call_id: 'c', content: 'sunny' }];
    assert.equal(planOutput('chat', { messages, tools: chatTools }, 0, 4, undefined).kind, 'text');
    assert.equal(planOutput('chat', { messages, tools: chatTools, tool_choice: 'required' }, 0, 4, undefined).kind, 'tool_call');
    const input = ['hi', { type: 'function_call_output', call_id: 'c', output: 'sunny' }];
    assert.equal(planOutput('responses', { input, tools: responsesTools }, 0, 4, undefined).kind, 'text');
  });

  it('reads the Responses API tool and format shapes', () => {
    const call = planOutput('responses', { input: 'hi', tools: responsesTools, tool_choice: { type: 'function', name: 'lookup' } }, 0, 4, undefined);
    assert.equal(call.kind === 'tool_call' && call.name, 'lookup');
    const json = planOutput('responses', { input: 'hi', text: { format: { type: 'json_schema', name: 'x', schema: parameters } } }, 0, 4, undefined);
    assert.deepEqual(Object.keys(JSON.parse(json.kind === 'text' ? json.text : '')), ['city', 'days']);
  });

  it('answers valid JSON for json_object and the schema for json_schema, whatever the token limit', () => {
    const object = planOutput('chat', { messages: user, response_format: { type: 'json_object' } }, 0, 4, 1);
    assert.equal(object.kind === 'text' && typeof JSON.parse(object.text), 'object');
    const schema = planOutput('chat', { messages: user, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: parameters } } }, 0, 4, undefined);
    const value = JSON.parse(schema.kind === 'text' ? schema.text : '');
    assert.deepEqual(Object.keys(value), ['city', 'days']);
    assert.equal(schema.kind === 'text' && schema.pieces.join(''), schema.kind === 'text' && schema.text);
  });

  it('is deterministic for a request and varies with the conversation', () => {
    const body = (content: string) => ({ messages: [{ role: 'user', content }], tools: chatTools });
    assert.deepEqual(planOutput('chat', body('a'), 0, 4, undefined), planOutput('chat', body('a'), 0, 4, undefined));
    const many = new Set(['a', 'b', 'c', 'd', 'e'].map((c) => JSON.stringify(planOutput('chat', body(c), 0, 4, undefined))));
    assert.ok(many.size > 1);
  });

  it('never calls tools for legacy completions', () => {
    assert.equal(planOutput('completion', { prompt: 'x', tools: chatTools }, 0, 2, undefined).kind, 'text');
  });
});

describe('splitPieces and outputTokens', () => {
  it('split a text into consecutive pieces', () => {
    assert.deepEqual(splitPieces('abcdefg', 3), ['abc', 'def', 'g']);
    assert.deepEqual(splitPieces('', 3), ['']);
    assert.deepEqual(splitPieces('ab', 5), ['a', 'b']);
  });

  it('count words and punctuation', () => {
    assert.equal(outputTokens('word1 word2 '), 2);
    assert.equal(outputTokens('{"a":1}'), 7);
    assert.equal(outputTokens(''), 0);
  });
});
