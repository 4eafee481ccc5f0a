import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { modelHeaders } from './inference.service';
import { ResponsesEventFramer } from './responses-events';

describe('ResponsesEventFramer', () => {
  it("names each event by its type and follows the last sequence_number with the error event", () => {
    const framer = new ResponsesEventFramer();
    assert.equal(framer.frame('{"type":"response.created","sequence_number":0}'), 'event: response.created\ndata: {"type":"response.created","sequence_number":0}\n\n');
    framer.frame('{"type":"response.output_text.delta","sequence_number":5,"delta":"x"}');
    const error = framer.error({ message: 'silent', code: 'request_timeout', param: null });
    assert.ok(error.startsWith('event: error\ndata: '));
    assert.deepEqual(JSON.parse(error.slice(error.indexOf('data: ') + 6)), { type: 'error', code: 'request_timeout', message: 'silent', param: null, sequence_number: 6 });
  });

  it('writes no event line for a type that could break the framing, or no type at all', () => {
    const framer = new ResponsesEventFramer();
    assert.equal(framer.frame('{"type":"a\\nevent: b"}'), 'data: {"type":"a\\nevent: b"}\n\n');
    assert.equal(framer.frame('{"object":"x"}'), 'data: {"object":"x"}\n\n');
    assert.match(framer.error({ message: 'm', code: null, param: null }), /"sequence_number":0/);
    assert.doesNotMatch(framer.error({ message: 'm', code: null, param: null }, false), /sequence_number/);
  });
});

describe('modelHeaders', () => {
  it('names the model that answered, and the one asked for only when they differ', () => {
    assert.deepEqual(modelHeaders('sim-small', 'sim-small'), { 'x-model': 'sim-small' });
    assert.deepEqual(modelHeaders('sim-large', 'sim-small'), { 'x-model': 'sim-small', 'x-fallback-from': 'sim-large' });
    assert.deepEqual(modelHeaders('modèle', 'modèle'), {}, 'a name a header cannot carry is left out');
  });
});
