import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LoadShedError, QueueFullError, ResourceUnavailableError, TierNotAllowedError, TokensExceedLimitError, UpstreamError } from '../common/errors';
import type { ClientIdentity, RequestContext } from '../common/request-context';
import { parseServiceTier, refusalForTier } from '../common/service-tier';
import { readUsage, StreamUsageMeter } from './answer-usage';
import type { RateLimiterService, TokenLimits } from './rate-limiter.service';
import { applyServiceTier } from './service-tier-rights';
import { estimateTokens } from './token-estimate';
import { TokenUsageService, UsageEvent } from './token-usage.service';

const client = (over: Partial<ClientIdentity> = {}): ClientIdentity => ({ id: 'key_0000aaaa', name: 'team-a', tier: 'normal', admin: false, weight: 1, ...over });
const contextOf = (c: ClientIdentity, extra: Partial<RequestContext> = {}) => ({ client: c, ...extra }) as RequestContext;

/** Records what would be settled instead of sending it to Redis. */
function usageService(defaultMaxTokens = 100) {
  const settled: { clientId: string; limits: TokenLimits; delta: number }[] = [];
  const limiter = { settle: (clientId: string, limits: TokenLimits, delta: number) => settled.push({ clientId, limits, delta }) } as unknown as RateLimiterService;
  const config = { tokenLimitDefaultMaxTokens: defaultMaxTokens } as never;
  const service = new TokenUsageService(config, limiter);
  const events: UsageEvent[] = [];
  service.onUsage((e) => events.push(e));
  return { service, settled, events };
}

describe('service_tier', () => {
  it('reads the four values OpenAI documents for chat and responses (auto is default) and refuses others with 400', () => {
    assert.equal(parseServiceTier('auto'), 'default');
    assert.equal(parseServiceTier('flex'), 'flex');
    assert.equal(parseServiceTier(null), undefined);
    for (const bad of ['scale', 'PRIORITY', 3, {}]) assert.throws(() => parseServiceTier(bad), (e: Error & { code?: string; param?: string }) => e.code === 'invalid_body' && e.param === 'service_tier');
  });

  it("maps tiers to priorities and refuses, naming the tier, what the key may not use; never upgrades silently", () => {
    const normal = client();
    const ctx = contextOf(normal);
    assert.throws(() => applyServiceTier(ctx, { service_tier: 'priority' }), (e) => e instanceof TierNotAllowedError && /"priority"/.test(e.message));
    const flex = contextOf(normal);
    const body = { model: 'm', service_tier: 'flex' };
    assert.equal(applyServiceTier(flex, body), 'flex');
    assert.equal(flex.servicePriority, 'low');
    assert.equal('service_tier' in body, false, 'the upstream never receives it');
    const auto = contextOf(client({ tier: 'low' }));
    assert.equal(applyServiceTier(auto, { service_tier: 'auto' }), 'default');
    assert.equal(auto.servicePriority, 'low', "default is the key's own priority");
    const granted = contextOf(client({ serviceTiers: ['priority', 'default'] }));
    assert.equal(applyServiceTier(granted, { service_tier: 'priority' }), 'priority');
    assert.equal(granted.servicePriority, 'high', 'a tier the file grants');
    assert.throws(() => applyServiceTier(contextOf(client({ serviceTiers: ['priority', 'default'] })), { service_tier: 'flex' }), TierNotAllowedError);
    const none = contextOf(normal);
    assert.equal(applyServiceTier(none, { model: 'm' }), 'default');
    assert.equal(none.servicePriority, undefined);
  });

  it("turns a flex request's capacity refusals into 429 resource_unavailable with the same Retry-After, and nothing else", () => {
    const mapped = refusalForTier(new QueueFullError(5, 5, 2500), 'flex');
    assert.ok(mapped instanceof ResourceUnavailableError);
    assert.equal(mapped.retryAfterMs, 2500);
    assert.ok(refusalForTier(new LoadShedError('x', 1000), 'flex') instanceof ResourceUnavailableError);
    const upstream = new UpstreamError('boom');
    assert.equal(refusalForTier(upstream, 'flex'), upstream);
    const full = new QueueFullError(5, 5, 2500);
    assert.equal(refusalForTier(full, 'default'), full);
    assert.equal(refusalForTier(full, undefined), full);
  });
});

describe('token estimates and plans', () => {
  it('reserves the prompt estimate plus the output limit (times n), or the default', () => {
    const chat = { messages: [{ role: 'user', content: 'x'.repeat(40) }, { role: 'user', content: [{ type: 'text', text: 'y'.repeat(8) }] }], max_tokens: 50, n: 2 };
    assert.deepEqual(estimateTokens(chat, false, 100), { promptTokens: 12, outputTokens: 100, param: 'max_tokens', defaulted: false, promptParam: 'messages' });
    assert.deepEqual(estimateTokens({ input: 'abcd', instructions: 'abcdefgh', max_output_tokens: 7 }, false, 100), { promptTokens: 3, outputTokens: 7, param: 'max_output_tokens', defaulted: false, promptParam: 'input' });
    assert.deepEqual(estimateTokens({ prompt: [1, 2, 3] }, false, 100), { promptTokens: 3, outputTokens: 100, param: 'max_tokens', defaulted: true, promptParam: 'prompt' });
    assert.deepEqual(estimateTokens({ input: ['abcd', 'efgh'] }, true, 100), { promptTokens: 2, outputTokens: 0, param: 'input', defaulted: false, promptParam: 'input' });
  });

  it('plans only for keys with token limits; 400 naming the limit for a request that never fits; the default cut to fit', () => {
    const { service } = usageService(1000);
    assert.equal(service.planFor(client(), { messages: [] }, false), undefined);
    const limited = client({ limits: { tokensPerMinute: 500, tokensPerDay: 10_000 } });
    assert.deepEqual(service.planFor(limited, { messages: [{ content: 'x'.repeat(40) }], max_tokens: 90 }, false), { perMinute: 500, perDay: 10_000, cost: 100, promptTokens: 10 });
    assert.throws(
      () => service.planFor(limited, { messages: [{ content: 'x'.repeat(40) }], max_tokens: 491 }, false),
      (e) => e instanceof TokensExceedLimitError && e.param === 'max_tokens' && /limit of 500 tokens per minute/.test(e.message),
    );
    assert.equal(service.planFor(limited, { messages: [{ content: 'x'.repeat(40) }] }, false)?.cost, 500, 'the default output cut to what the limit leaves');
    assert.throws(() => service.planFor(limited, { messages: [{ content: 'x'.repeat(2004) }] }, false), (e) => e instanceof TokensExceedLimitError && e.param === 'messages');
  });
});

describe('settlement of a reservation', () => {
  const limited = client({ limits: { tokensPerMinute: 1000 } });
  const reserve = () => contextOf(limited, { tokens: { reserved: 300, promptTokens: 20 } });

  it('settles by usage when the answer reports it, and counts prompt, completion and cached tokens', () => {
    const { service, settled, events } = usageService();
    const ctx = reserve();
    const usage = readUsage({ prompt_tokens: 20, completion_tokens: 7, total_tokens: 27, prompt_tokens_details: { cached_tokens: 16 } });
    service.end(ctx, 'sim-small', { usage, answered: true, stream: false });
    service.end(ctx, 'sim-small', { usage, answered: true, stream: false });
    assert.deepEqual(settled, [{ clientId: 'key_0000aaaa', limits: { perMinute: 1000, perDay: undefined }, delta: 27 - 300 }], 'once');
    assert.deepEqual(events[0], { keyName: 'team-a', model: 'sim-small', usage: { promptTokens: 20, completionTokens: 7, cachedTokens: 16 } });
  });

  it('settles a stream without usage by its prompt estimate and what it relayed; a refusal before the upstream gives all back', () => {
    const { service, settled } = usageService();
    service.end(reserve(), 'm', { relayed: 9, answered: true, stream: true });
    service.end(reserve(), 'm', { answered: false, stream: false });
    service.end(reserve(), 'm', { answered: false, stream: false, upstreamFailed: true });
    service.end(reserve(), 'm', { answered: true, stream: false });
    assert.deepEqual(settled.map((s) => s.delta), [29 - 300, -300, 20 - 300], 'a JSON answer without usage keeps its reservation');
  });

  it("hands a queued job's reservation to the worker that finishes it: the request settles nothing, the worker settles once by the job's usage", () => {
    const { service, settled, events } = usageService();
    const ctx = reserve();
    const carried = service.forJob(ctx);
    assert.deepEqual(carried, { keyName: 'team-a', reservation: { reserved: 300, promptTokens: 20, perMinute: 1000, perDay: undefined } });
    service.handOver(ctx);
    service.end(ctx, 'm', { answered: false, stream: false });
    assert.deepEqual(settled, [], 'the request that queued the job settles nothing');
    // What a job's JSON carries through BullMQ, then its worker on some instance.
    const onWorker = JSON.parse(JSON.stringify(carried));
    service.endJob('key_0000aaaa', onWorker, 'sim-small', { usage: readUsage({ prompt_tokens: 20, completion_tokens: 80 }), answered: true, stream: false });
    assert.deepEqual(settled, [{ clientId: 'key_0000aaaa', limits: { perMinute: 1000, perDay: undefined }, delta: 100 - 300 }]);
    assert.deepEqual(events.map((e) => [e.keyName, e.usage.completionTokens]), [['team-a', 80]]);
  });

  it("gives back a job's reservation when its submission fails; counts a job of a key without limits in the metrics only", () => {
    const { service, settled, events } = usageService();
    const refused = reserve();
    service.forJob(refused);
    service.end(refused, 'm', { answered: false, stream: false });
    assert.deepEqual(settled.map((s) => s.delta), [-300], 'not handed over: the request gives it all back');
    const plain = service.forJob(contextOf(client()));
    assert.deepEqual(plain, { keyName: 'team-a', reservation: undefined });
    service.endJob('key_0000aaaa', plain, 'm', { usage: readUsage({ prompt_tokens: 3, completion_tokens: 4 }), answered: true, stream: false });
    assert.equal(settled.length, 1, 'no limits, nothing to settle');
    assert.deepEqual(events.at(-1)?.usage, { promptTokens: 3, completionTokens: 4, cachedTokens: 0 });
  });

  it('reads usage from chat, embeddings and Responses API shapes, and from the last chunk of a stream', () => {
    assert.deepEqual(readUsage({ input_tokens: 5, output_tokens: 3, input_tokens_details: { cached_tokens: 2 } }), { promptTokens: 5, completionTokens: 3, cachedTokens: 2 });
    assert.deepEqual(readUsage({ prompt_tokens: 4, total_tokens: 4 }), { promptTokens: 4, completionTokens: 0, cachedTokens: 0 });
    assert.equal(readUsage({}), undefined);
    const meter = new StreamUsageMeter();
    for (const data of [
      '{"choices":[{"delta":{"role":"assistant","content":""}}]}',
      '{"choices":[{"delta":{"content":"word1 "}}]}',
      '{"choices":[{"delta":{"content":"word2 "}}]}',
      '{"choices":[{"delta":{},"finish_reason":"stop"}]}',
    ])
      meter.observe(data);
    assert.equal(meter.relayed, 2);
    assert.equal(meter.usage, undefined);
    meter.observe('{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}');
    assert.deepEqual(meter.usage, { promptTokens: 3, completionTokens: 2, cachedTokens: 0 });
    const responses = new StreamUsageMeter();
    responses.observe('{"type":"response.output_text.delta","delta":"a"}');
    responses.observe('{"type":"response.output_text.done","text":"a"}');
    responses.observe('{"type":"response.completed","response":{"usage":{"input_tokens":4,"output_tokens":1,"total_tokens":5}}}');
    assert.equal(responses.relayed, 1);
    assert.deepEqual(responses.usage, { promptTokens: 4, completionTokens: 1, cachedTokens: 0 });
  });
});
