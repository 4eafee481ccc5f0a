import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { after, before, describe, it } from 'node:test';
import { BucketSettlement, BucketTake, LIMITS_SCRIPT, limitsScriptArgs, modelLimitsScript } from '../src/auth/limits-script';
import { requestBucket, tokenBucket } from '../src/auth/token-bucket';
import { SeededRandomSource } from '../src/common/random';
import { startRedis, TestRedis } from './support/redis-server';

describe('the limits script in a real Redis, step by step against its model', () => {
  let redis: TestRedis;
  let client: Redis;

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  });

  after(async () => {
    client?.disconnect();
    await redis?.stop();
  });

  it('takes all or nothing, settles, and stores and reports exactly the TATs of the model, for random traffic', async () => {
    const random = new SeededRandomSource(7);
    const buckets = { r: requestBucket(13), m: tokenBucket(7001, 60_000), d: tokenBucket(250_000, 86_400_000) };
    const keys = { r: 'bulwark:ratelimit:key_script01', m: 'bulwark:tokens:key_script01:minute', d: 'bulwark:tokens:key_script01:day' };
    const model = new Map<string, number>();
    let now = 1_700_000_000_000;
    let admitted = 0;
    let refused = 0;
    for (let step = 0; step < 400; step++) {
      now += Math.floor(random.next() * 3000);
      const cost = 1 + Math.floor(random.next() * 2500);
      const takes: BucketTake[] = [
        { key: keys.r, bucket: buckets.r, cost: 1 },
        { key: keys.m, bucket: buckets.m, cost },
        { key: keys.d, bucket: buckets.d, cost },
      ];
      const settlements: BucketSettlement[] =
        random.next() < 0.5
          ? []
          : [
              { key: keys.m, interval: buckets.m.interval, delta: Math.floor(random.next() * 2000) - 1500 },
              { key: keys.d, interval: buckets.d.interval, delta: Math.floor(random.next() * 2000) - 1500 },
            ];
      const { keys: scriptKeys, argv } = limitsScriptArgs(now, takes, settlements);
      const answer = (await client.eval(LIMITS_SCRIPT, scriptKeys.length, ...scriptKeys, ...argv)) as [number, ...string[]];
      const expected = modelLimitsScript(model, now, takes, settlements);
      assert.equal(answer[0], expected[0], `step ${step}: which bucket refused`);
      answer.slice(1).forEach((tat, i) => assert.ok(Math.abs(Number(tat) - Number(expected[i + 1])) < 1e-6, `step ${step}, bucket ${i}: ${tat} vs ${expected[i + 1]}`));
      for (const key of Object.values(keys)) {
        const stored = await client.get(key);
        const modelled = model.get(key);
        assert.equal(stored === null, modelled === undefined, `step ${step}: ${key} stored ${stored}, model ${modelled}`);
        if (stored !== null) assert.ok(Math.abs(Number(stored) - modelled!) < 1e-6, `step ${step}: ${key} stored ${stored}, model ${modelled}, now ${now}`);
      }
      if (answer[0] === 0) admitted++;
      else refused++;
    }
    assert.ok(admitted > 20 && refused > 20, `both outcomes occur (${admitted} admitted, ${refused} refused)`);
    const ttl = await client.pttl(keys.m);
    assert.ok(ttl === -2 || (ttl > 0 && ttl <= 60_000 + 60_000 * 3), `the minute bucket expires once full again (pttl ${ttl})`);
  });
});
