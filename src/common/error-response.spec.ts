import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadRequestException, NotFoundException, PayloadTooLargeException, UnsupportedMediaTypeException } from '@nestjs/common';
import { toErrorResponse } from './error-response';
import {
  BulwarkError,
  CircuitOpenError,
  ErrorCode,
  QueueFullError,
  RateLimitedError,
  ShuttingDownError,
  UpstreamClientError,
  UpstreamError,
} from './errors';

/** API.md §4, row by row, plus the codes the contract leaves to the design. */
const TABLE: Record<ErrorCode, [status: number, type: string]> = {
  invalid_json: [400, 'invalid_request_error'],
  invalid_body: [400, 'invalid_request_error'],
  invalid_header: [400, 'invalid_request_error'],
  unsupported_media_type: [415, 'invalid_request_error'],
  invalid_api_key: [401, 'authentication_error'],
  admin_only: [403, 'permission_error'],
  model_not_found: [404, 'not_found_error'],
  job_not_found: [404, 'not_found_error'],
  response_not_found: [404, 'not_found_error'],
  route_not_found: [404, 'not_found_error'],
  breaker_not_found: [404, 'not_found_error'],
  file_not_found: [404, 'not_found_error'],
  batch_not_found: [404, 'not_found_error'],
  body_too_large: [413, 'invalid_request_error'],
  rate_limited: [429, 'rate_limit_error'],
  tokens_rate_limited: [429, 'rate_limit_error'],
  tokens_exceed_limit: [400, 'invalid_request_error'],
  tier_not_allowed: [403, 'permission_error'],
  resource_unavailable: [429, 'rate_limit_error'],
  key_queue_share_exceeded: [429, 'rate_limit_error'],
  queue_full: [503, 'overloaded_error'],
  load_shed: [503, 'overloaded_error'],
  deadline_unreachable: [503, 'overloaded_error'],
  shutting_down: [503, 'overloaded_error'],
  circuit_open: [503, 'upstream_unavailable'],
  upstream_error: [502, 'upstream_error'],
  upstream_bad_response: [502, 'upstream_error'],
  upstream_rate_limited: [429, 'rate_limit_error'],
  queue_timeout: [504, 'timeout_error'],
  request_timeout: [504, 'timeout_error'],
  job_not_cancellable: [409, 'invalid_request_error'],
  batch_not_cancellable: [409, 'invalid_request_error'],
  internal_error: [500, 'server_error'],
};

function assertShape(body: unknown): void {
  const error = (body as { error: Record<string, unknown> }).error;
  assert.deepEqual(Object.keys(error).sort(), ['code', 'message', 'param', 'suggestions', 'type']);
  assert.equal(typeof error.message, 'string');
  assert.ok(Array.isArray(error.suggestions) && error.suggestions.length > 0);
}

describe('toErrorResponse', () => {
  for (const [code, [status, type]] of Object.entries(TABLE) as [ErrorCode, [number, string]][]) {
    it(`maps ${code} to ${status} ${type}`, () => {
      const response = toErrorResponse(new BulwarkError(code, `message for ${code}`, { param: 'model' }));
      assert.equal(response.status, status);
      assertShape(response.body);
      assert.equal(response.body.error.type, type);
      assert.equal(response.body.error.code, code);
      assert.equal(response.body.error.message, `message for ${code}`);
      assert.equal(response.body.error.param, 'model');
      assert.equal(response.headers['x-should-retry'], String(status >= 500 || status === 429));
      assert.equal('retry-after' in response.headers, status === 429 || status === 503);
    });
  }

  it('rounds Retry-After up to whole seconds', () => {
    assert.equal(toErrorResponse(new QueueFullError(50, 50, 1500)).headers['retry-after'], '2');
    assert.equal(toErrorResponse(new QueueFullError(50, 50, 2000)).headers['retry-after'], '2');
    assert.equal(toErrorResponse(new RateLimitedError(60, 59_001)).headers['retry-after'], '60');
    assert.equal(toErrorResponse(new CircuitOpenError('m', 30_000)).headers['retry-after'], '30');
  });

  it('never gives a Retry-After below 1 s, nor a non-number', () => {
    for (const ms of [0, 1, 250, -500, undefined, Number.NaN, Number.POSITIVE_INFINITY]) {
      const value = toErrorResponse(new BulwarkError('load_shed', 'shed', { retryAfterMs: ms })).headers['retry-after'];
      assert.match(value, /^[1-9]\d*$/, `retryAfterMs ${ms} gave Retry-After ${value}`);
    }
    assert.equal(toErrorResponse(new ShuttingDownError()).headers['retry-after'], '1');
  });

  it('gives no Retry-After outside 429 and 503, even with a hint', () => {
    const response = toErrorResponse(new UpstreamError('Upstream primary answered 429', 429, { retryAfterMs: 5000 }));
    assert.equal(response.status, 502);
    assert.equal(response.headers['retry-after'], undefined);
    assert.equal(response.headers['x-should-retry'], 'true');
  });

  it("passes an upstream's own 4xx through with its status, message, type, param and code", () => {
    const response = toErrorResponse(
      new UpstreamClientError(422, { message: 'This model maximum context length is 4096 tokens', type: 'BadRequestError', param: 'messages', code: 'context_length_exceeded' }),
    );
    assert.equal(response.status, 422);
    assertShape(response.body);
    assert.equal(response.body.error.message, 'This model maximum context length is 4096 tokens');
    assert.equal(response.body.error.type, 'BadRequestError');
    assert.equal(response.body.error.param, 'messages');
    assert.equal(response.body.error.code, 'context_length_exceeded');
    assert.deepEqual(response.headers, { 'x-should-retry': 'false' });
  });

  it("fills the upstream 4xx's missing fields with OpenAI's defaults", () => {
    const response = toErrorResponse(new UpstreamClientError(400, { message: 'bad prompt' }));
    assert.equal(response.status, 400);
    assert.equal(response.body.error.type, 'invalid_request_error');
    assert.equal(response.body.error.param, null);
    assert.equal(response.body.error.code, null);
  });

  it('maps an unknown error to a 500 that reveals nothing internal', () => {
    const secret = new Error('connect ECONNREFUSED 10.0.0.7:6379 password=hunter2 at /srv/bulwark/src/x.ts:12');
    for (const thrown of [secret, new TypeError("Cannot read properties of undefined (reading 'id')"), 'a string', null, undefined, { weird: true }]) {
      const response = toErrorResponse(thrown);
      assert.equal(response.status, 500);
      assertShape(response.body);
      assert.equal(response.body.error.type, 'server_error');
      assert.equal(response.body.error.code, 'internal_error');
      assert.equal(response.body.error.message, 'Internal error');
      assert.doesNotMatch(JSON.stringify(response.body), /hunter2|ECONNREFUSED|\/srv|reading/);
    }
  });

  it('does not trust the statusCode of an unknown 5xx error', () => {
    const error = Object.assign(new Error('pool exhausted: db-primary'), { statusCode: 503 });
    const response = toErrorResponse(error);
    assert.equal(response.status, 500);
    assert.doesNotMatch(response.body.error.message, /db-primary/);
  });

  it("maps Fastify's body errors by their code", () => {
    const fastify = (code: string, statusCode: number) => Object.assign(new Error(`internal ${code}`), { code, statusCode });
    assert.equal(toErrorResponse(fastify('FST_ERR_CTP_BODY_TOO_LARGE', 413)).body.error.code, 'body_too_large');
    assert.equal(toErrorResponse(fastify('FST_ERR_CTP_BODY_TOO_LARGE', 413)).status, 413);
    assert.equal(toErrorResponse(fastify('FST_ERR_CTP_INVALID_MEDIA_TYPE', 415)).status, 415);
    assert.equal(toErrorResponse(fastify('FST_ERR_CTP_EMPTY_JSON_BODY', 400)).body.error.code, 'invalid_json');
    assert.equal(toErrorResponse(fastify('FST_ERR_CTP_INVALID_JSON_BODY', 400)).body.error.code, 'invalid_json');
  });

  it('maps a 4xx with an unknown code to invalid_body without its message', () => {
    const response = toErrorResponse(Object.assign(new Error('FST internal detail'), { code: 'FST_ERR_SOMETHING', statusCode: 400 }));
    assert.equal(response.status, 400);
    assert.equal(response.body.error.code, 'invalid_body');
    assert.doesNotMatch(response.body.error.message, /internal detail/);
  });

  it("maps Nest's HTTP exceptions into the contract", () => {
    const notFound = toErrorResponse(new NotFoundException('Cannot POST /v2/chat'));
    assert.equal(notFound.status, 404);
    assert.equal(notFound.body.error.code, 'route_not_found');
    assert.equal(toErrorResponse(new PayloadTooLargeException()).body.error.code, 'body_too_large');
    assert.equal(toErrorResponse(new UnsupportedMediaTypeException()).status, 415);
    const bad = toErrorResponse(new BadRequestException(['model must be a string', 'messages must be an array']));
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_body');
    assert.equal(bad.body.error.message, 'model must be a string; messages must be an array');
  });
});
