import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidRequestError } from '../common/errors';
import { ChatCompletionRequestDto, CompletionRequestDto, EmbeddingRequestDto } from './dto/openai-requests.dto';
import { OpenAIBodyPipe } from './openai-body.pipe';

const chat = new OpenAIBodyPipe(ChatCompletionRequestDto);
const completion = new OpenAIBodyPipe(CompletionRequestDto);
const embedding = new OpenAIBodyPipe(EmbeddingRequestDto);
const messages = [{ role: 'user', content: 'hello' }];

/** The invalid_body error that `body` causes; fails the test if the pipe accepts it. */
function refusal(pipe: OpenAIBodyPipe, body: unknown): InvalidRequestError {
  try {
    pipe.transform(body);
  } catch (error) {
    assert.ok(error instanceof InvalidRequestError, `expected an InvalidRequestError, got ${String(error)}`);
    assert.equal(error.code, 'invalid_body');
    return error;
  }
  assert.fail(`expected ${JSON.stringify(body)} to be refused`);
}

describe('OpenAIBodyPipe', () => {
  it('returns the very body it was given, unknown fields untouched', () => {
    const body = { model: 'm', messages, stream: true, max_tokens: 16, guided_json: { type: 'object' }, top_k: 5, x_sim: { fault: 'none' } };
    const result = chat.transform(body);
    assert.equal(result, body);
    assert.deepEqual(result, { model: 'm', messages, stream: true, max_tokens: 16, guided_json: { type: 'object' }, top_k: 5, x_sim: { fault: 'none' } });
  });

  it('refuses a body that is not a JSON object', () => {
    for (const body of [undefined, null, 'text', 42, true, [], [{ model: 'm' }]]) {
      assert.match(refusal(chat, body).message, /must be a JSON object/);
    }
  });

  it('names the field and its expected type for a wrong type', () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ model: 5, messages }, 'model', /model must be a string/],
      [{ messages }, 'model', /model must be a string/],
      [{ model: 'm', messages: 'x' }, 'messages', /messages must be an array/],
      [{ model: 'm' }, 'messages', /messages must be an array/],
      [{ model: 'm', messages, stream: 'yes' }, 'stream', /stream must be a boolean/],
      [{ model: 'm', messages, max_tokens: 1.5 }, 'max_tokens', /max_tokens must be an integer/],
      [{ model: 'm', messages, temperature: '1' }, 'temperature', /temperature must be a number/],
      [{ model: 'm', messages, stream_options: 'include_usage' }, 'stream_options', /stream_options must be an object/],
    ];
    for (const [body, param, message] of cases) {
      const error = refusal(chat, body);
      assert.equal(error.param, param, JSON.stringify(body));
      assert.match(error.message, message);
    }
  });

  it('refuses values out of range', () => {
    assert.equal(refusal(chat, { model: 'm', messages, max_tokens: -1 }).param, 'max_tokens');
    assert.equal(refusal(chat, { model: 'm', messages, max_tokens: 0 }).param, 'max_tokens');
    assert.equal(refusal(chat, { model: 'm', messages, temperature: 3 }).param, 'temperature');
    assert.equal(refusal(chat, { model: 'm', messages, n: 0 }).param, 'n');
    assert.equal(refusal(chat, { model: '', messages }).param, 'model');
    assert.equal(refusal(chat, { model: 'm', messages: [] }).param, 'messages');
  });

  it('names a bad message by its index', () => {
    const error = refusal(chat, { model: 'm', messages: [{ role: 'system', content: 'be brief' }, { content: 'no role' }] });
    assert.equal(error.param, 'messages.1.role');
    assert.match(error.message, /^messages\.1\.role must be a string/);
    assert.equal(refusal(chat, { model: 'm', messages: [5] }).param, 'messages');
    assert.equal(refusal(chat, { model: 'm', messages: [null] }).param, 'messages');
  });

  it('checks legacy completions: a prompt is required, stream is a boolean', () => {
    assert.ok(completion.transform({ model: 'm', prompt: 'Say this is a test' }));
    assert.ok(completion.transform({ model: 'm', prompt: ['a', 'b'], stream: true }));
    assert.equal(refusal(completion, { model: 'm' }).param, 'prompt');
    assert.equal(refusal(completion, { model: 'm', prompt: 'x', stream: 1 }).param, 'stream');
  });

  it('checks embeddings: an input is required, stream is not looked at', () => {
    assert.ok(embedding.transform({ model: 'm', input: 'text' }));
    assert.ok(embedding.transform({ model: 'm', input: ['a', 'b'], encoding_format: 'float' }));
    assert.equal(refusal(embedding, { model: 'm' }).param, 'input');
    assert.equal(refusal(embedding, { model: 'm', input: null }).param, 'input');
    assert.equal(refusal(embedding, { input: 'x' }).param, 'model');
  });
});
