import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { registerRequestLog, requestLogFields, requestLogLevel } from './request-log';

describe('registerRequestLog', () => {
  it("puts the request's id, method and url on lines logged while it is served, across awaits and the body parser", async () => {
    const fastify = Fastify({ genReqId: (req) => String(req.headers['x-request-id'] ?? 'generated') });
    registerRequestLog(fastify, 'silent');
    fastify.post('/v1/chat/completions', async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return requestLogFields();
    });
    fastify.get('/health/live', async () => requestLogFields());
    const served = await fastify.inject({ method: 'POST', url: '/v1/chat/completions', headers: { 'x-request-id': 'r-1' }, payload: { model: 'm' } });
    assert.deepEqual(served.json(), { req: { id: 'r-1', method: 'POST', url: '/v1/chat/completions' } });
    // Probes get no request fields (and no line of their own).
    assert.deepEqual((await fastify.inject({ method: 'GET', url: '/health/live' })).json(), {});
    // Outside any request, nothing.
    assert.deepEqual(requestLogFields(), {});
    await fastify.close();
  });
});

describe('requestLogLevel', () => {
  it('logs refusals at debug, failures at warn, the rest at info, and nothing below the configured level', () => {
    assert.equal(requestLogLevel(429, false, 'debug'), 'debug');
    assert.equal(requestLogLevel(200, false, 'warn'), 'silent');
    assert.equal(requestLogLevel(200, true, 'warn'), 'warn');
    assert.equal(requestLogLevel(404, false, 'info'), 'info');
  });
});
