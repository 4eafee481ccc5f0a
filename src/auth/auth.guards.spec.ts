import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Controller, Get, Req } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { FastifyRequest } from 'fastify';
import { Clock, FakeClock } from '../common/clock';
import { OpenAIExceptionFilter } from '../common/openai-exception.filter';
import { effectivePriority, RequestContext } from '../common/request-context';
import { RequestContextGuard } from '../common/request-context.guard';
import { Kind } from '../common/route-kind.decorator';
import { authConfig, queueConfig, serverConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { ApiKeyGuard } from './api-key.guard';
import { clientIdOf } from './api-key-ring';
import { AuthService } from './auth.service';
import { modelLimitsScript, readLimitsScriptArgs } from './limits-script';
import { RateLimitGuard } from './rate-limit.guard';
import { RateLimiterService } from './rate-limiter.service';
import { TokenUsageService } from './token-usage.service';

/** Answers with what the guards decided about the caller. */
@Controller()
class ProbeController {
  private static seen(request: FastifyRequest) {
    const context = request.bulwark as RequestContext;
    context.finish();
    return { client: context.client, priority: effectivePriority(context) };
  }
  @Get('v1/infer') @Kind('inference') infer(@Req() r: FastifyRequest) { return ProbeController.seen(r); }
  @Get('v1/things') @Kind('client') things(@Req() r: FastifyRequest) { return ProbeController.seen(r); }
  @Get('admin/things') @Kind('admin') admin(@Req() r: FastifyRequest) { return ProbeController.seen(r); }
  @Get('health') @Kind('public') health() { return { ok: true }; }
}

/** A stand-in for Redis that runs the rate-limit script's arithmetic and says NOSCRIPT until it has seen EVAL. */
class ScriptedRedis {
  readonly store = new Map<string, number>();
  readonly calls: string[] = [];
  private loaded = false;
  async evalsha(_sha: string, n: number, ...args: string[]) {
    this.calls.push('evalsha');
    if (!this.loaded) throw new Error('NOSCRIPT No matching script. Please use EVAL.');
    return this.step(n, args);
  }
  async eval(_script: string, n: number, ...args: string[]) {
    this.calls.push('eval');
    this.loaded = true;
    return this.step(n, args);
  }
  private step(n: number, args: string[]) {
    const { now, takes, settlements } = readLimitsScriptArgs(args.slice(0, n), args.slice(n));
    return modelLimitsScript(this.store, now, takes, settlements);
  }
}

const KEYS = { high: 'sk-high-1111', normal: 'sk-normal-2222', low: 'sk-low-3333', admin: 'sk-admin-9999' };
const apps: NestFastifyApplication[] = [];
after(async () => {
  for (const app of apps) await app.close();
});

async function boot(options: { apiKeys?: string; adminKey?: string; rpm?: number; redis?: object } = {}) {
  const auth = { apiKeys: options.apiKeys, adminApiKey: options.adminKey, rateLimitRpm: options.rpm ?? 0, tokenLimitDefaultMaxTokens: 4096, metricsAuth: 'none', healthDetails: 'none' };
  const moduleRef = await Test.createTestingModule({
    controllers: [ProbeController],
    providers: [
      { provide: authConfig.KEY, useValue: auth },
      { provide: serverConfig.KEY, useValue: { requestTimeoutMs: 5000 } },
      { provide: queueConfig.KEY, useValue: { jobTimeoutMs: 5000 } },
      { provide: RedisService, useValue: { client: options.redis ?? new ScriptedRedis() } },
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
  return async (url: string, headers: Record<string, string> = {}) => {
    const res = await app.inject({ method: 'GET', url, headers });
    return { status: res.statusCode, headers: res.headers, json: res.json() };
  };
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const ALL_KEYS = `${KEYS.high}:high,${KEYS.normal}:normal,${KEYS.low}:low`;

describe('tier capping through the real guards', () => {
  it("caps the asked priority at the key's tier, and never raises it", async () => {
    const get = await boot({ apiKeys: ALL_KEYS, adminKey: KEYS.admin });
    const expected: Record<string, Record<string, string>> = {
      high: { high: 'high', normal: 'normal', low: 'low' },
      normal: { high: 'normal', normal: 'normal', low: 'low' },
      low: { high: 'low', normal: 'low', low: 'low' },
      admin: { high: 'high', normal: 'normal', low: 'low' },
    };
    for (const [tier, byAsked] of Object.entries(expected)) {
      for (const [asked, effective] of Object.entries(byAsked)) {
        const res = await get('/v1/infer', { ...bearer(KEYS[tier as keyof typeof KEYS]), 'x-priority': asked });
        assert.equal(res.status, 200);
        assert.equal(res.json.priority, effective, `${tier} key asking ${asked}`);
      }
    }
    const low = await get('/v1/infer', { 'x-api-key': KEYS.low });
    assert.deepEqual(low.json.client, { id: clientIdOf(KEYS.low), name: clientIdOf(KEYS.low), tier: 'low', admin: false, weight: 1 });
  });

  it('treats everyone as anonymous with tier high while API_KEYS is unset', async () => {
    const get = await boot({ adminKey: KEYS.admin });
    const res = await get('/v1/infer', { 'x-priority': 'high', ...bearer('anything') });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { client: { id: 'anonymous', name: 'anonymous', tier: 'high', admin: false, weight: 1 }, priority: 'high' });
    assert.equal((await get('/v1/things', bearer(KEYS.admin))).json.client.admin, true);
  });
});

describe('route rules through the real guards', () => {
  const rows: [string, string, Record<string, string>, number, string | null][] = [
    // [config, url, headers, status, error code]
    ['keys+admin', '/v1/infer', {}, 401, 'invalid_api_key'],
    ['keys+admin', '/v1/infer', bearer('sk-unknown'), 401, 'invalid_api_key'],
    ['keys+admin', '/v1/infer', bearer(KEYS.low), 200, null],
    ['keys+admin', '/v1/things', { 'x-api-key': KEYS.normal }, 200, null],
    ['keys+admin', '/v1/things', bearer(KEYS.admin), 200, null],
    ['keys+admin', '/admin/things', bearer(KEYS.admin), 200, null],
    ['keys+admin', '/admin/things', bearer(KEYS.high), 403, 'admin_only'],
    ['keys+admin', '/admin/things', {}, 401, 'invalid_api_key'],
    ['keys+admin', '/admin/things', bearer('sk-unknown'), 401, 'invalid_api_key'],
    ['keys+admin', '/health', {}, 200, null],
    ['keys', '/admin/things', bearer(KEYS.high), 403, 'admin_only'],
    ['keys', '/admin/things', bearer(KEYS.admin), 403, 'admin_only'],
    ['keys', '/admin/things', {}, 403, 'admin_only'],
    ['open', '/v1/things', {}, 200, null],
    ['open', '/admin/things', {}, 403, 'admin_only'],
    ['open+admin', '/admin/things', {}, 401, 'invalid_api_key'],
    ['open+admin', '/admin/things', bearer(KEYS.admin), 200, null],
  ];
  const configs: Record<string, { apiKeys?: string; adminKey?: string }> = {
    'keys+admin': { apiKeys: ALL_KEYS, adminKey: KEYS.admin },
    keys: { apiKeys: ALL_KEYS },
    open: {},
    'open+admin': { adminKey: KEYS.admin },
  };

  it('answers each route kind by the contract, in the contract error shape', async () => {
    const getters = Object.fromEntries(await Promise.all(Object.entries(configs).map(async ([name, c]) => [name, await boot(c)] as const)));
    for (const [config, url, headers, status, code] of rows) {
      const res = await getters[config](url, headers);
      const label = `${config} ${url} ${JSON.stringify(headers)}`;
      assert.equal(res.status, status, label);
      if (code) {
        assert.equal(res.json.error.code, code, label);
        assert.equal(res.json.error.type, status === 401 ? 'authentication_error' : 'permission_error', label);
        assert.equal(res.headers['x-should-retry'], 'false', label);
        for (const key of Object.values(KEYS)) assert.ok(!JSON.stringify(res.json).includes(key), `${label} echoes a key`);
      }
    }
  });

  it('refuses an X-Request-Id over 128 characters with 400 invalid_header, except on public routes', async () => {
    const get = await boot({ apiKeys: ALL_KEYS });
    const long = await get('/v1/things', { ...bearer(KEYS.low), 'x-request-id': 'r'.repeat(129) });
    assert.equal(long.status, 400);
    assert.equal(long.json.error.code, 'invalid_header');
    assert.equal(long.json.error.param, 'X-Request-Id');
    assert.equal((await get('/v1/things', { ...bearer(KEYS.low), 'x-request-id': 'r'.repeat(128) })).status, 200);
    assert.equal((await get('/health', { 'x-request-id': 'r'.repeat(129) })).status, 200);
  });
});

describe('rate limit through the real guards', () => {
  it('counts per key, sets X-RateLimit-* on every answer, and answers 429 with Retry-After when over', async () => {
    const redis = new ScriptedRedis();
    const get = await boot({ apiKeys: ALL_KEYS, adminKey: KEYS.admin, rpm: 2, redis });
    const first = await get('/v1/infer', bearer(KEYS.low));
    const second = await get('/v1/things', bearer(KEYS.low));
    const third = await get('/v1/infer', bearer(KEYS.low));
    assert.deepEqual([first.status, second.status, third.status], [200, 200, 429]);
    assert.deepEqual([first, second, third].map((r) => r.headers['x-ratelimit-remaining']), ['1', '0', '0']);
    for (const r of [first, second, third]) assert.equal(r.headers['x-ratelimit-limit'], '2');
    assert.equal(third.json.error.type, 'rate_limit_error');
    assert.equal(third.json.error.code, 'rate_limited');
    assert.equal(third.headers['retry-after'], '30');
    assert.equal(third.headers['x-ratelimit-reset'], '60');
    assert.equal(third.headers['x-should-retry'], 'true');

    assert.equal((await get('/v1/infer', bearer(KEYS.high))).status, 200, 'another key has its own allowance');
    for (let i = 0; i < 4; i++) {
      const admin = await get('/v1/infer', bearer(KEYS.admin));
      assert.equal(admin.status, 200, 'the admin key is not limited');
      assert.equal(admin.headers['x-ratelimit-limit'], undefined);
    }
    assert.equal((await get('/health', bearer(KEYS.low))).headers['x-ratelimit-limit'], undefined);
    assert.deepEqual(redis.calls, ['evalsha', 'eval', 'evalsha', 'evalsha', 'evalsha'], 'one script call per limited request');
  });

  it('counts nothing and sets no headers when RATE_LIMIT_RPM is 0', async () => {
    const redis = new ScriptedRedis();
    const get = await boot({ apiKeys: ALL_KEYS, rpm: 0, redis });
    const res = await get('/v1/infer', bearer(KEYS.low));
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-ratelimit-limit'], undefined);
    assert.deepEqual(redis.calls, []);
  });

  it('fails closed with 503 overloaded_error when the store errors or does not answer', async () => {
    const failing = { evalsha: () => Promise.reject(new Error("Stream isn't writeable")), eval: () => Promise.reject(new Error('down')) };
    const hanging = { evalsha: () => new Promise(() => undefined), eval: () => new Promise(() => undefined) };
    for (const redis of [failing, hanging]) {
      const get = await boot({ apiKeys: ALL_KEYS, rpm: 10, redis });
      const res = await get('/v1/infer', bearer(KEYS.low));
      assert.equal(res.status, 503);
      assert.equal(res.json.error.type, 'overloaded_error');
      assert.equal(res.json.error.code, 'load_shed');
      assert.match(res.json.error.message, /rate limiter's store is unreachable/);
      assert.equal(res.headers['retry-after'], '1');
      assert.equal((await get('/health')).status, 200, 'health stays up');
    }
  });
});
