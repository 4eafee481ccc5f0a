import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SSE_DONE, SseParser, sseEvent } from './sse';

/** Feeds `pieces` one by one and returns every event, including those flushed by end(). */
function parseAll(pieces: (string | Uint8Array)[], flush = true): string[] {
  const parser = new SseParser();
  const events = pieces.flatMap((p) => parser.push(p));
  return flush ? [...events, ...parser.end()] : events;
}

/** Every way of cutting `text` into two pieces. */
function everySplit(text: string): [string, string][] {
  return Array.from({ length: text.length + 1 }, (_, i) => [text.slice(0, i), text.slice(i)]);
}

describe('SseParser', () => {
  it('reads OpenAI-framed events and [DONE]', () => {
    const text = sseEvent('{"a":1}') + sseEvent('{"b":2}') + sseEvent(SSE_DONE);
    assert.deepEqual(parseAll([text], false), ['{"a":1}', '{"b":2}', '[DONE]']);
  });

  it('gives the same events wherever the bytes are split', () => {
    const text = 'data: {"x":"first"}\n\ndata: second\n\n: keep-alive\n\ndata: [DONE]\n\n';
    for (const [a, b] of everySplit(text)) {
      assert.deepEqual(parseAll([a, b], false), ['{"x":"first"}', 'second', '[DONE]'], `split at ${a.length}`);
    }
  });

  it('gives the same events when fed one byte at a time', () => {
    const text = 'data: one\r\n\r\ndata: two\n\n';
    assert.deepEqual(parseAll([...Buffer.from(text)].map((b) => Uint8Array.of(b)), false), ['one', 'two']);
  });

  it('reads CRLF and lone CR line endings', () => {
    assert.deepEqual(parseAll(['data: a\r\n\r\ndata: b\r\rdata: c\n\n'], false), ['a', 'b', 'c']);
  });

  it('does not take a CRLF split between two chunks for two line endings', () => {
    const text = 'data: line1\r\ndata: line2\r\n\r\ndata: next\r\n\r\n';
    for (const [a, b] of everySplit(text)) {
      assert.deepEqual(parseAll([a, b], false), ['line1\nline2', 'next'], `split at ${a.length}: ${JSON.stringify(a)}`);
    }
  });

  it('joins multi-line data with a newline', () => {
    assert.deepEqual(parseAll(['data: {"a":\ndata: 1}\n\n'], false), ['{"a":\n1}']);
  });

  it('takes the space after "data:" as optional, and only one of them', () => {
    assert.deepEqual(parseAll(['data:tight\n\ndata:  two spaces\n\n'], false), ['tight', ' two spaces']);
  });

  it('skips comments and the fields it does not use', () => {
    const text = ': ping\n\nevent: message\nid: 7\nretry: 1000\ndata: payload\n\n:another comment\n\n';
    assert.deepEqual(parseAll([text], false), ['payload']);
  });

  it('dispatches no event for a blank line without data', () => {
    assert.deepEqual(parseAll(['\n\n\n\nevent: x\n\n'], false), []);
  });

  it('holds an incomplete event until its blank line arrives', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push('data: part'), []);
    assert.deepEqual(parser.push('ial\n'), []);
    assert.deepEqual(parser.push('\n'), ['partial']);
  });

  it('decodes a multi-byte UTF-8 character split across chunks', () => {
    const bytes = Buffer.from('data: héllo → 世界\n\n');
    for (let i = 0; i <= bytes.length; i++) {
      assert.deepEqual(parseAll([bytes.subarray(0, i), bytes.subarray(i)], false), ['héllo → 世界'], `split at byte ${i}`);
    }
  });

  it('flushes on end() an event left without its blank line', () => {
    assert.deepEqual(parseAll(['data: {"last":true}'], true), ['{"last":true}']);
    assert.deepEqual(parseAll(['data: a\ndata: b\n'], true), ['a\nb']);
    assert.deepEqual(parseAll(['data: cr\r'], true), ['cr']);
  });

  it('flushes nothing on end() after complete events, and nothing twice', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push('data: x\n\n'), ['x']);
    assert.deepEqual(parser.end(), []);
    assert.deepEqual(parser.end(), []);
  });
});

describe('sseEvent', () => {
  it('frames one data event as OpenAI does', () => {
    assert.equal(sseEvent('{"a":1}'), 'data: {"a":1}\n\n');
    assert.equal(sseEvent(SSE_DONE), 'data: [DONE]\n\n');
  });
});
