import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Body, Controller, HttpCode, Post, Req } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { FastifyRequest } from 'fastify';
import { Clock, FakeClock } from '../common/clock';
import { QueueFullError } from '../common/errors';
import { OpenAIExceptionFilter } from '../common/openai-exception.filter';
import { effectivePriority, RequestContext } from '../common/request-context';
import { RequestContextGuard } from '../common/request-context.guard';
import { Kind } from '../common/route-kind.decorator';
import { keyDigest } from '../config/api-keys-file';
import { authConfig, queueConfig, serverConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { ApiKeyGuard } from './api-key.guard';
import { AuthService } from './auth.service';
import { modelLimitsScript, readLimitsScriptArgs } from './limits-script';
import { RateLimitGuard } from './rate-limit.guard';
import { RateLimiterService } from './rate-limiter.service';
import { TokenUsageService } from './token-usage.service';

/** Answers with what the guards decided; `/v1/full` refuses as a full queue would. */
@Controller('v1')
class ProbeController {
  @Post('infer') @Kind('inference') @HttpCode(200)
  infer(@Req() request: FastifyRequest, @Body() body: Record<string, unknown>) {
    const context = request.bulwark as RequestContext;
    context.finish();
    return { priority: effectivePriority(context), tier: context.serviceTier ?? null, tokens: context.tokens ?? null, forwarded: body };
  }
  @Post('full') @Kind('inference')
  full(@Req() request: FastifyRequest) {
    request.bulwark?.finish();
    throw new QueueFullError(10, 10, 2500);
  }
}

/** Runs the limits script's arithmetic in memory, counting calls. */
class ScriptedRedis {
  readonly store = new Map<string, number>();
  calls = 0;
  async evalsha(_sha: string, n: number, ...args: string[]) {
    this.calls++;
    const { now, takes, settlements } = readLimitsScriptArgs(args.slice(0, n), args.slice(n));
    return modelLimitsScript(this.store, now, takes, settlements);
  }
}

const KEYS = { tight: 'sk-tight-1111', normal: 'sk-normal-2222', high: 'sk-high-3333' };
const apps: NestFastifyApplication[] = [];
after(async () => {
  for (const app of apps) await app.close();
});

async function boot(store: object = new ScriptedRedis()) {
  const clientKeys = [
    { name: 'tight', tier: 'normal', weight: 1, digest: keyDigest(KEYS.tight), limits: { tokensPerMinute: 1000, requestsPerMinute: 100 }, serviceTiers: ['default', 'flex'] },
    { name: 'normal', tier: 'normal', weight: 1, digest: keyDigest(KEYS.normal), serviceTiers: ['default', 'flex'] },
    { name: 'high', tier: 'high', weight: 1, digest: keyDigest(KEYS.high), serviceTiers: ['priority', 'default'] },
  ];
  const auth = { clientKeys, rateLimitRpm: 0, tokenLimitDefaultMaxTokens: 4096, metricsAuth: 'none', healthDetails: 'none' };
  const redis = store as ScriptedRedis;
  const moduleRef = await Test.createTestingModule({
    controllers: [ProbeController],
    providers: [
      { provide: authConfig.KEY, useValue: auth },
      { provide: serverConfig.KEY, useValue: { requestTimeoutMs: 5000 } },
      { provide: queueConfig.KEY, useValue: { jobTimeoutMs: 5000 } },
      { provide: RedisService, useValue: { client: redis } },
      { provide: Clock, useValue: new FakeClock() },
      AuthService, RateLimiterService, TokenUsageService, RequestContextGuard, ApiKeyGuard, RateLimitGuard,
      { provide: APP_GUARD, useExisting: RequestContextGuard },
      { provide: APP_GUARD, useExisting: ApiKeyGuard },
      { provide: APP_GUARD, useExisting: RateLimitGuard },
      { provide: APP_FILTER, useClass: OpenAIExceptionFilter },
    ],
  }).compile();
  const app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false });
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  apps.push(app);
  const post = async (url: string, key: string, body: Record<string, unknown>) => {
    const res = await app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${key}` }, payload: body });
    return { status: res.statusCode, headers: res.headers, json: res.json() };
  };
  return { post, redis };
}

const ask = (maxTokens: number, extra: Record<string, unknown> = {}) => ({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(40) }], max_tokens: maxTokens, ...extra });

describe('token limits and service tiers through the real guards', () => {
  it("reserves each request's worst case in one script call, with OpenAI's headers, then 429 tokens_rate_limited", async () => {
    const { post, redis } = await boot();
    const first = await post('/v1/infer', KEYS.tight, ask(590));
    assert.equal(first.status, 200);
    assert.deepEqual(first.json.tokens, { reserved: 600, promptTokens: 10 });
    assert.equal(first.headers['x-ratelimit-limit-tokens'], '1000');
    assert.equal(first.headers['x-ratelimit-remaining-tokens'], '400');
    assert.equal(first.headers['x-ratelimit-reset-tokens'], '36s');
    assert.equal(first.headers['x-ratelimit-limit-requests'], '100');
    assert.equal(first.headers['x-ratelimit-remaining-requests'], '99');
    assert.equal(first.headers['x-ratelimit-reset-requests'], '600ms');
    const refused = await post('/v1/infer', KEYS.tight, ask(400));
    assert.equal(refused.status, 429);
    assert.deepEqual([refused.json.error.type, refused.json.error.code], ['rate_limit_error', 'tokens_rate_limited']);
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(refused.headers['retry-after-ms'], '600', '10 more tokens than fit: 10 × 60 ms');
    assert.equal(refused.headers['x-should-retry'], 'true');
    assert.equal(refused.headers['x-ratelimit-remaining-tokens'], '400');
    assert.equal(refused.headers['x-ratelimit-remaining-requests'], '99', 'a refusal takes no request either');
    assert.equal(redis.calls, 2, 'one script call per request');
  });

  it('answers 400 tokens_exceed_limit, naming the limit and the field, for a request that could never fit', async () => {
    const { post, redis } = await boot();
    const res = await post('/v1/infer', KEYS.tight, { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 5000 });
    assert.equal(res.status, 400);
    assert.equal(res.json.error.code, 'tokens_exceed_limit');
    assert.equal(res.json.error.param, 'max_completion_tokens');
    assert.match(res.json.error.message, /limit of 1000 tokens per minute/);
    assert.equal(res.headers['x-should-retry'], 'false');
    assert.equal(redis.calls, 0, 'refused before Redis');
  });

  it('maps service_tier to priorities, refuses a tier the key may not use with 403, an unknown one with 400, and never forwards it', async () => {
    const { post } = await boot();
    const priority = await post('/v1/infer', KEYS.high, ask(5, { service_tier: 'priority' }));
    assert.deepEqual([priority.status, priority.json.priority, priority.json.tier, priority.headers['x-service-tier']], [200, 'high', 'priority', 'priority']);
    assert.equal('service_tier' in priority.json.forwarded, false);
    const flex = await post('/v1/infer', KEYS.high, ask(5, { service_tier: 'flex' }));
    assert.equal(flex.status, 403, 'the file refuses flex to this key');
    assert.deepEqual([flex.json.error.type, flex.json.error.code, flex.json.error.param], ['permission_error', 'tier_not_allowed', 'service_tier']);
    const upgrade = await post('/v1/infer', KEYS.normal, ask(5, { service_tier: 'priority' }));
    assert.equal(upgrade.status, 403);
    assert.match(upgrade.json.error.message, /"priority"/);
    const auto = await post('/v1/infer', KEYS.normal, ask(5, { service_tier: 'auto' }));
    assert.deepEqual([auto.json.priority, auto.json.tier, auto.headers['x-service-tier']], ['normal', 'default', 'default']);
    const plain = await post('/v1/infer', KEYS.normal, ask(5));
    assert.equal(plain.headers['x-service-tier'], 'default');
    const unknown = await post('/v1/infer', KEYS.normal, ask(5, { service_tier: 'scale' }));
    assert.deepEqual([unknown.status, unknown.json.error.code, unknown.json.error.param], [400, 'invalid_body', 'service_tier']);
  });

  it('fails closed with 503 when the store does not answer, as the request limit does', async () => {
    const { post } = await boot({ evalsha: () => new Promise(() => undefined), script: () => Promise.resolve('sha') });
    const res = await post('/v1/infer', KEYS.tight, ask(5));
    assert.deepEqual([res.status, res.json.error.type, res.json.error.code], [503, 'overloaded_error', 'load_shed']);
    assert.match(res.json.error.message, /rate limiter's store is unreachable/);
    assert.equal(res.headers['retry-after'], '1');
  });

  it('tells a flex request without capacity 429 resource_unavailable with Retry-After, and others the 503', async () => {
    const { post } = await boot();
    const flex = await post('/v1/full', KEYS.normal, ask(5, { service_tier: 'flex' }));
    assert.equal(flex.status, 429);
    assert.deepEqual([flex.json.error.type, flex.json.error.code], ['rate_limit_error', 'resource_unavailable']);
    assert.equal(flex.headers['retry-after'], '3');
    assert.equal(flex.headers['x-should-retry'], 'true');
    const other = await post('/v1/full', KEYS.normal, ask(5));
    assert.deepEqual([other.status, other.json.error.code], [503, 'queue_full']);
  });
});
