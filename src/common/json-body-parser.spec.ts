import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { FastifyInstance } from 'fastify';
import { InvalidRequestError } from './errors';
import { jsonDepthExceeds, parseJsonBody, registerJsonBodyParser } from './json-body-parser';

/** The invalid_json error that parsing `body` causes; fails the test if it parses. */
function refusal(body: Buffer | string): InvalidRequestError {
  try {
    parseJsonBody(typeof body === 'string' ? Buffer.from(body) : body);
  } catch (error) {
    assert.ok(error instanceof InvalidRequestError, `expected an InvalidRequestError, got ${String(error)}`);
    assert.equal(error.code, 'invalid_json');
    return error;
  }
  assert.fail(`expected ${String(body)} to be refused`);
}

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

describe('parseJsonBody', () => {
  it('parses a valid body, non-ASCII text and a UTF-8 BOM included', () => {
    assert.deepEqual(parseJsonBody(Buffer.from('{"model":"m","messages":[{"role":"user","content":"héllo 世界"}]}')), {
      model: 'm',
      messages: [{ role: 'user', content: 'héllo 世界' }],
    });
    assert.deepEqual(parseJsonBody(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')])), { a: 1 });
  });

  it('refuses an empty body', () => {
    assert.match(refusal(Buffer.alloc(0)).message, /empty/);
  });

  it('refuses a whitespace-only body and malformed JSON', () => {
    refusal('   \n');
    assert.match(refusal('{"model": "m",').message, /not valid JSON/);
    refusal("{'single': 'quotes'}");
  });

  it('refuses bytes that are not valid UTF-8', () => {
    assert.match(refusal(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])).message, /UTF-8/);
    // An overlong encoding of "/" and a lone continuation byte.
    refusal(Buffer.from([0x22, 0xc0, 0xaf, 0x22]));
    refusal(Buffer.from([0x22, 0x80, 0x22]));
  });

  it('accepts 64 levels of nesting and refuses 65', () => {
    assert.ok(Array.isArray(parseJsonBody(Buffer.from(nested(64)))));
    assert.match(refusal(nested(65)).message, /deeper than 64/);
    assert.match(refusal(`{"a":${'{"b":'.repeat(70)}1${'}'.repeat(70)}}`).message, /deeper/);
  });

  it('refuses a __proto__ key at any depth', () => {
    assert.match(refusal('{"__proto__": {"admin": true}}').message, /__proto__/);
    refusal('{"messages": [{"role": "user", "__proto__": {"admin": true}}]}');
  });

  it('refuses a constructor key holding a prototype', () => {
    assert.match(refusal('{"constructor": {"prototype": {"admin": true}}}').message, /constructor/);
    refusal('{"a": {"constructor": {"prototype": 1}}}');
  });

  it('refuses polluting keys spelled with \\u escapes', () => {
    refusal('{"__pro\\u0074o__": {"admin": true}}');
    refusal('{"\\u005f\\u005fproto__": {"admin": true}}');
    refusal('{"\\u0063onstructor": {"prototype": {"admin": true}}}');
    const parsed = (() => {
      try {
        return parseJsonBody(Buffer.from('{"__pro\\u0074o__": {"admin": true}}'));
      } catch {
        return {};
      }
    })();
    assert.equal((Object.assign({}, parsed) as { admin?: boolean }).admin, undefined);
  });

  it('lets the same words through as values and in harmless places', () => {
    assert.deepEqual(parseJsonBody(Buffer.from('{"content": "__proto__ and constructor", "constructor": "x"}')), {
      content: '__proto__ and constructor',
      constructor: 'x',
    });
    assert.deepEqual(parseJsonBody(Buffer.from('{"content": "caf\\u00e9 \\u0041"}')), { content: 'café A' });
  });
});

describe('jsonDepthExceeds', () => {
  it('counts objects and arrays together', () => {
    assert.equal(jsonDepthExceeds('{"a":[{"b":[1]}]}', 4), false);
    assert.equal(jsonDepthExceeds('{"a":[{"b":[1]}]}', 3), true);
  });

  it('ignores brackets inside strings, escaped quotes included', () => {
    assert.equal(jsonDepthExceeds(`{"a":"${'['.repeat(100)}"}`, 2), false);
    assert.equal(jsonDepthExceeds(`{"a":"\\"${'{'.repeat(100)}"}`, 2), false);
    assert.equal(jsonDepthExceeds(`{"a":"\\\\", "b": ${nested(5)}}`, 3), true);
  });

  it('tells a quote after an even run of backslashes (closing) from one after an odd run (escaped)', () => {
    assert.equal(jsonDepthExceeds(`{"a":"\\\\\\"[[[[", "b": 1}`, 2), false);
    assert.equal(jsonDepthExceeds(`{"a":"\\\\\\\\", "b": [[[1]]]}`, 2), true);
    assert.equal(jsonDepthExceeds(`{"":[[[1]]], "x": ""}`, 3), true);
    assert.equal(jsonDepthExceeds(`{"a": "unterminated [[[[`, 1), false);
  });
});

describe('registerJsonBodyParser', () => {
  let app: FastifyInstance;

  before(async () => {
    app = Fastify();
    registerJsonBodyParser(app, 1024);
    app.post('/echo', async (request) => ({ got: request.body }));
    app.setErrorHandler((error: Error & { code?: string; statusCode?: number }, _request, reply) => {
      void reply.status(error.statusCode ?? 500).send({ code: error.code });
    });
    await app.ready();
  });

  after(async () => {
    await app.close();
  });

  it('parses application/json with the strict parser', async () => {
    const ok = await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/json; charset=utf-8' }, payload: '{"a":1}' });
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(ok.json(), { got: { a: 1 } });
    const polluted = await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload: '{"__proto__":{}}' });
    assert.equal(polluted.json().code, 'invalid_json');
  });

  it('refuses a body over the limit while reading it', async () => {
    const res = await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ s: 'x'.repeat(2000) }) });
    assert.equal(res.statusCode, 413);
    assert.equal(res.json().code, 'FST_ERR_CTP_BODY_TOO_LARGE');
  });

  it('no longer accepts text/plain', async () => {
    const res = await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'text/plain' }, payload: '{"a":1}' });
    assert.equal(res.statusCode, 415);
    assert.equal(res.json().code, 'FST_ERR_CTP_INVALID_MEDIA_TYPE');
  });
});
