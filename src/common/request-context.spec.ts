import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CancelledError, InvalidRequestError, RequestTimeoutError } from './errors';
import { attachRequestContext, effectivePriority, parsePriority, parseTimeout } from './request-context';

function assertInvalidHeader(fn: () => unknown, param: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof InvalidRequestError);
    assert.equal(error.code, 'invalid_header');
    assert.equal(error.param, param);
    return true;
  });
}

/** The two things attachRequestContext touches: the request's id and headers, the reply's raw socket side. */
/** Limits of a synchronous request on a non-async route. */
const sync = (requestTimeoutMs: number) => ({ requestTimeoutMs, jobTimeoutMs: 600_000, asyncRoute: false });

function fakeExchange(headers: Record<string, string | string[]> = {}) {
  const raw = Object.assign(new EventEmitter(), { writableFinished: false });
  const request = { id: 'req-1', headers } as unknown as FastifyRequest;
  const reply = { raw } as unknown as FastifyReply;
  return { request, reply, raw };
}

describe('parsePriority', () => {
  it('defaults to normal', () => {
    assert.equal(parsePriority(undefined), 'normal');
    assert.equal(parsePriority(''), 'normal');
  });

  it('reads each priority, ignoring case and surrounding space', () => {
    assert.equal(parsePriority('high'), 'high');
    assert.equal(parsePriority('NORMAL'), 'normal');
    assert.equal(parsePriority(' Low '), 'low');
  });

  it('refuses anything else as an invalid X-Priority header', () => {
    for (const raw of ['urgent', '1', 'high,low', 'hi']) assertInvalidHeader(() => parsePriority(raw), 'X-Priority');
  });

  it('quotes at most 32 characters of a bad value', () => {
    assert.throws(() => parsePriority('x'.repeat(500)), (error: Error) => error.message.length < 120);
  });
});

describe('parseTimeout', () => {
  it('defaults to the configured request timeout', () => {
    assert.equal(parseTimeout(undefined, 60_000), 60_000);
    assert.equal(parseTimeout('', 60_000), 60_000);
  });

  it('takes a shorter client deadline as given', () => {
    assert.equal(parseTimeout('300', 60_000), 300);
    assert.equal(parseTimeout('1', 60_000), 1);
  });

  it('caps a longer client deadline at the configured timeout', () => {
    assert.equal(parseTimeout('60001', 60_000), 60_000);
    assert.equal(parseTimeout('999999999', 60_000), 60_000);
  });

  it('caps a very large integer instead of refusing it', () => {
    assert.equal(parseTimeout('10000000000', 60_000), 60_000);
    assert.equal(parseTimeout('9'.repeat(40), 5000), 5000);
  });

  it('refuses zero, negatives, fractions and non-numbers', () => {
    for (const raw of ['0', '-5', '1.5', '1e3', 'abc', '300ms', '0x10']) {
      assertInvalidHeader(() => parseTimeout(raw, 60_000), 'X-Request-Timeout-Ms');
    }
  });
});

describe('attachRequestContext', () => {
  it("builds the context from the request's headers", () => {
    const { request, reply } = fakeExchange({ 'x-priority': 'low', 'x-request-timeout-ms': '2500' });
    const context = attachRequestContext(request, reply, sync(10_000), 1_000_000);
    context.finish();
    assert.equal(context.requestId, 'req-1');
    assert.equal(context.receivedAt, 1_000_000);
    assert.equal(context.timeoutMs, 2500);
    assert.equal(context.deadlineAt, 1_002_500);
    assert.equal(context.requestedPriority, 'low');
    assert.equal(context.client.id, 'anonymous');
    assert.equal(request.bulwark, context);
  });

  it('caps the deadline at the configured timeout and reads the first of repeated headers', () => {
    const { request, reply } = fakeExchange({ 'x-request-timeout-ms': ['999999', '5'], 'x-priority': ['high', 'low'] });
    const context = attachRequestContext(request, reply, sync(4000), 0);
    context.finish();
    assert.equal(context.timeoutMs, 4000);
    assert.equal(context.deadlineAt, 4000);
    assert.equal(context.requestedPriority, 'high');
  });

  it('gives an asynchronous request the job deadline instead of the request one', () => {
    const limits = { requestTimeoutMs: 1000, jobTimeoutMs: 90_000, asyncRoute: false };
    const preferred = fakeExchange({ prefer: 'wait=5, respond-async' });
    const viaHeader = attachRequestContext(preferred.request, preferred.reply, limits, 0);
    viaHeader.finish();
    assert.equal(viaHeader.mode, 'async');
    assert.equal(viaHeader.timeoutMs, 90_000);

    const jobs = fakeExchange({ 'x-request-timeout-ms': '120000' });
    const viaRoute = attachRequestContext(jobs.request, jobs.reply, { ...limits, asyncRoute: true }, 0);
    viaRoute.finish();
    assert.equal(viaRoute.mode, 'async');
    assert.equal(viaRoute.timeoutMs, 90_000);

    const plain = fakeExchange({ 'x-request-timeout-ms': '120000' });
    const synchronous = attachRequestContext(plain.request, plain.reply, limits, 0);
    synchronous.finish();
    assert.equal(synchronous.mode, 'sync');
    assert.equal(synchronous.timeoutMs, 1000);
  });

  it('is idempotent per request', () => {
    const { request, reply } = fakeExchange();
    const first = attachRequestContext(request, reply, sync(1000));
    assert.equal(attachRequestContext(request, reply, sync(5)), first);
    first.finish();
  });

  it('throws a 400 for a bad header before starting any timer', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { request, reply, raw } = fakeExchange({ 'x-request-timeout-ms': 'soon' });
    assertInvalidHeader(() => attachRequestContext(request, reply, sync(1000)), 'X-Request-Timeout-Ms');
    assert.equal(request.bulwark, undefined);
    assert.equal(raw.listenerCount('close'), 0);
  });

  it('aborts the signal with a RequestTimeoutError when the deadline passes', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { request, reply } = fakeExchange({ 'x-request-timeout-ms': '300' });
    const context = attachRequestContext(request, reply, sync(60_000));
    t.mock.timers.tick(299);
    assert.equal(context.signal.aborted, false);
    t.mock.timers.tick(1);
    assert.equal(context.signal.aborted, true);
    assert.ok(context.signal.reason instanceof RequestTimeoutError);
    assert.equal(context.signal.reason.code, 'request_timeout');
    assert.match(context.signal.reason.message, /300 ms/);
  });

  it('fires at the configured timeout when the client names none', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { request, reply } = fakeExchange();
    const context = attachRequestContext(request, reply, sync(1000));
    t.mock.timers.tick(999);
    assert.equal(context.signal.aborted, false);
    t.mock.timers.tick(1);
    assert.ok(context.signal.reason instanceof RequestTimeoutError);
  });

  it('never fires once finish() was called', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { request, reply } = fakeExchange({ 'x-request-timeout-ms': '300' });
    const context = attachRequestContext(request, reply, sync(60_000));
    context.finish();
    t.mock.timers.tick(10_000);
    assert.equal(context.signal.aborted, false);
  });

  it('aborts with a CancelledError when the client closes the connection before the answer finished', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { request, reply, raw } = fakeExchange({ 'x-request-timeout-ms': '300' });
    const context = attachRequestContext(request, reply, sync(60_000));
    raw.emit('close');
    assert.equal(context.signal.aborted, true);
    assert.ok(context.signal.reason instanceof CancelledError);
    assert.equal(context.signal.reason.by, 'client');
    // The deadline timer is gone with the client: the reason stays the cancellation.
    t.mock.timers.tick(10_000);
    assert.ok(context.signal.reason instanceof CancelledError);
  });

  it('does not abort when the connection closes after the answer was sent in full', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { request, reply, raw } = fakeExchange({ 'x-request-timeout-ms': '300' });
    const context = attachRequestContext(request, reply, sync(60_000));
    raw.writableFinished = true;
    raw.emit('close');
    t.mock.timers.tick(10_000);
    assert.equal(context.signal.aborted, false);
  });
});

describe('effectivePriority', () => {
  const client = (tier: 'high' | 'normal' | 'low') => ({ id: 'k', name: 'k', tier, admin: false, weight: 1 });

  it("keeps what was asked when the key's tier allows it", () => {
    assert.equal(effectivePriority({ requestedPriority: 'high', client: client('high') }), 'high');
    assert.equal(effectivePriority({ requestedPriority: 'low', client: client('high') }), 'low');
    assert.equal(effectivePriority({ requestedPriority: 'normal', client: client('normal') }), 'normal');
  });

  it("caps it at the key's tier", () => {
    assert.equal(effectivePriority({ requestedPriority: 'high', client: client('low') }), 'low');
    assert.equal(effectivePriority({ requestedPriority: 'high', client: client('normal') }), 'normal');
    assert.equal(effectivePriority({ requestedPriority: 'normal', client: client('low') }), 'low');
  });
});
