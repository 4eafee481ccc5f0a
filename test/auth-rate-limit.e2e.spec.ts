import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../src/common/clock';
import { RedisService } from '../src/redis/redis.service';
import { gcraStep } from '../src/auth/gcra';
import { RateLimiterService, RateLimiterUnavailableError } from '../src/auth/rate-limiter.service';
import type { authConfig } from '../src/config/sections';
import type { ConfigType } from '@nestjs/config';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, expectErrorShape, getJson, postJson } from './support/http';
import { startRedis, TestRedis } from './support/redis-server';
import { Stack, startStack } from './support/stack';

const KEY_A = 'sk-rl-a-11f0e2';
const KEY_B = 'sk-rl-b-9c4d77';
const RPM = 5;

function limiterConfig(rpm: number): ConfigType<typeof authConfig> {
  return { apiKeys: undefined, clientKeys: undefined, adminApiKey: undefined, rateLimitRpm: rpm, tokenLimitDefaultMaxTokens: 4096, metricsAuth: 'none', healthDetails: 'none' };
}

describe('rate limit: the Redis script against its model, with a scripted clock', () => {
  let redis: TestRedis;
  let service: RedisService;

  before(async () => {
    redis = await startRedis();
    service = new RedisService({ redis: { kind: 'url', url: redis.url }, topology: { upstreams: [], fallbacks: {} }, simulated: false });
    for (let i = 0; i < 50 && !service.ready; i++) await sleep(20);
  });

  after(async () => {
    await service?.onApplicationShutdown();
    await redis?.stop();
  });

  it('decides exactly as the GCRA model does, step by step, and lets its keys expire', async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiterService(limiterConfig(7), service, clock);
    const policy = { limit: 7, periodMs: 60_000 };
    const gaps = [0, 0, 0, 0, 0, 0, 0, 0, 1, 8570, 1, 8572, 0, 30_000, 0, 0, 0, 0, 0, 120_000, 0, 0, 0, 0, 0, 0, 0, 0];
    let stored: number | undefined;
    const seen: boolean[] = [];
    for (const gap of gaps) {
      clock.advance(gap);
      const decision = await limiter.consume('key_model01');
      const model = gcraStep(stored, clock.now(), policy);
      if (model.allowed) stored = model.tat;
      assert.equal(decision.allowed, model.allowed, `at +${gap} ms`);
      seen.push(decision.allowed);
    }
    assert.ok(seen.includes(true) && seen.includes(false));
    const ttl = await service.client.pttl('bulwark:ratelimit:key_model01');
    assert.ok(ttl > 0 && ttl <= 7 * Math.ceil(60_000 / 7), `the key expires within one period (pttl ${ttl})`);
  });

  it('loads its script again after Redis forgets it', async () => {
    const limiter = new RateLimiterService(limiterConfig(3), service, new FakeClock());
    assert.equal((await limiter.consume('key_flush01')).allowed, true);
    await service.client.script('FLUSH');
    assert.equal((await limiter.consume('key_flush01')).remaining, 1);
  });

  it('refuses with RateLimiterUnavailableError when its Redis is gone', async () => {
    const gone = new RedisService({ redis: { kind: 'url', url: 'redis://127.0.0.1:1' }, topology: { upstreams: [], fallbacks: {} }, simulated: false });
    const limiter = new RateLimiterService(limiterConfig(3), gone, new FakeClock());
    await assert.rejects(limiter.consume('key_gone01'), RateLimiterUnavailableError);
    gone.client.disconnect();
    await gone.onApplicationShutdown();
  });
});

describe('rate limit: one allowance per key across two instances sharing Redis', () => {
  let stack: Stack;
  let redis: TestRedis;
  let gateways: GatewayProcess[];

  before(async () => {
    stack = await startStack({ simulator: { latencyMs: 1 }, env: { API_KEYS: `${KEY_A}:normal,${KEY_B}:low`, RATE_LIMIT_RPM: String(RPM) }, gateway: false });
    redis = stack.redis;
    gateways = await Promise.all([stack.startGateway(), stack.startGateway()]);
  });

  after(() => stack?.stop());

  it(`lets ${RPM} requests through over both instances, then answers 429 on either`, async () => {
    const key = { authorization: `Bearer ${KEY_A}` };
    for (let i = 0; i < RPM; i++) {
      const res = await postJson(`${gateways[i % 2].url}/v1/chat/completions`, chatBody(), key);
      assert.equal(res.status, 200, `request ${i + 1}`);
      assert.equal(res.headers.get('x-ratelimit-limit'), String(RPM));
      assert.equal(res.headers.get('x-ratelimit-remaining'), String(RPM - 1 - i));
      assert.ok(Number(res.headers.get('x-ratelimit-reset')) > 0);
    }
    for (const gateway of gateways) {
      const refused = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), key);
      assert.equal(refused.status, 429);
      const error = expectErrorShape(refused.json);
      assert.deepEqual([error.type, error.code], ['rate_limit_error', 'rate_limited']);
      assert.ok(Number(refused.headers.get('retry-after')) >= 1, 'Retry-After in whole seconds');
      assert.equal(refused.headers.get('x-ratelimit-limit'), String(RPM));
      assert.equal(refused.headers.get('x-ratelimit-remaining'), '0');
      assert.ok(Number(refused.headers.get('x-ratelimit-reset')) > 0);
      assert.equal(refused.headers.get('x-should-retry'), 'true');
    }
    const models = await getJson(`${gateways[1].url}/v1/models`, key);
    assert.equal(models.status, 429, 'client routes share the allowance');
  });

  it('leaves another key and the public routes unaffected', async () => {
    const other = await postJson(`${gateways[1].url}/v1/chat/completions`, chatBody(), { 'x-api-key': KEY_B });
    assert.equal(other.status, 200);
    assert.equal(other.headers.get('x-ratelimit-remaining'), String(RPM - 1));
    const health = await getJson(`${gateways[0].url}/health/live`, { authorization: `Bearer ${KEY_A}` });
    assert.equal(health.status, 200);
    assert.equal(health.headers.get('x-ratelimit-limit'), null);
  });

  it('fails closed with 503 while Redis hangs or is down, keeps health up, and recovers when it returns', async () => {
    const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await admin.connect();
    const expectRefused = async (label: string) => {
      const res = await postJson(`${gateways[0].url}/v1/chat/completions`, chatBody(), { authorization: `Bearer ${KEY_B}` }, 5000);
      assert.equal(res.status, 503, label);
      const error = expectErrorShape(res.json);
      assert.equal(error.type, 'overloaded_error', label);
      // Whichever notices first: the rate limiter's own call, or the door's queue figures going stale.
      assert.match(error.message, /rate limiter's store is unreachable|queue store \(Redis\) is unreachable/, label);
      assert.ok(Number(res.headers.get('retry-after')) >= 1, label);
      assert.equal((await getJson(`${gateways[0].url}/health/live`)).status, 200, label);
    };
    try {
      await admin.call('CLIENT', 'PAUSE', '3000', 'ALL');
      await expectRefused('Redis does not answer');
      await admin.call('CLIENT', 'UNPAUSE');
      await admin.call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
      await expectRefused('Redis is down');
    } finally {
      admin.disconnect();
      await redis.restart();
    }
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) {
      await sleep(100);
      status = (await postJson(`${gateways[0].url}/v1/chat/completions`, chatBody(), { authorization: `Bearer ${KEY_B}` }, 5000)).status;
    }
    assert.equal(status, 200, 'serves again once Redis is back');
  });
});
