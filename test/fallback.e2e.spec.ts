import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess, startGateway } from './support/gateway-process';
import { chatBody, expectErrorShape, getJson, postJson } from './support/http';
import { startRedis, TestRedis } from './support/redis-server';
import { TempFile, writeUpstreamsFile } from './support/stack';

const ADMIN_KEY = 'admin-fallback-e2e-key';
const ADMIN = { authorization: `Bearer ${ADMIN_KEY}` };

const chatCalls = (sim: UpstreamSimulator) => sim.stats.requestsByPath['/v1/chat/completions'] ?? 0;

describe('fallbacks: other upstreams of the model, then fallback models', () => {
  let redis: TestRedis;
  let alphaSim: UpstreamSimulator;
  let betaSim: UpstreamSimulator;
  let gateway: GatewayProcess;
  let file: TempFile;

  /** High priority: failures and open breakers lower the health score, and `critical` admits only high. */
  const chat = (extra: Record<string, unknown> = {}) => postJson(`${gateway.url}/v1/chat/completions`, chatBody(extra), { 'x-priority': 'high' });

  const breakerState = async (key: string) => {
    const res = await getJson(`${gateway.url}/admin/breakers`, ADMIN);
    assert.equal(res.status, 200, res.text);
    return (res.json.data.find((b: { key: string }) => b.key === key)?.state as string | undefined) ?? 'closed';
  };

  before(async () => {
    redis = await startRedis();
    alphaSim = new UpstreamSimulator({ latencyMs: 5, models: ['sim-small', 'sim-large'] });
    betaSim = new UpstreamSimulator({ latencyMs: 5, models: ['sim-small', 'sim-backup'] });
    const [alpha, beta] = await Promise.all([alphaSim.start(), betaSim.start()]);
    file = writeUpstreamsFile({
      upstreams: [
        { name: 'alpha', url: alpha.baseUrl, models: ['sim-small', 'sim-large'], weight: 1 },
        { name: 'beta', url: beta.baseUrl, models: ['sim-small', 'sim-backup'], weight: 1 },
      ],
      fallbacks: { 'sim-large': ['sim-backup'] },
    });
    gateway = await startGateway({
      env: {
        REDIS_URL: redis.url,
        UPSTREAMS_FILE: file.path,
        ADMIN_API_KEY: ADMIN_KEY,
        RETRY_MAX_ATTEMPTS: '1',
        BREAKER_WINDOW_SIZE: '10',
        BREAKER_MIN_CALLS: '4',
        BREAKER_COOLDOWN_MS: '60000',
        REQUEST_TIMEOUT_MS: '5000',
      },
    });
  });

  after(async () => {
    await gateway?.stop();
    await Promise.all([alphaSim?.stop(), betaSim?.stop()]);
    await redis?.stop();
    file?.remove();
  });

  it('spreads a model over the weighted upstreams that serve it and names the one that answered', async () => {
    const answeredBy = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const res = await chat();
      assert.equal(res.status, 200, res.text);
      answeredBy.add(res.headers.get('x-upstream')!);
    }
    assert.deepEqual([...answeredBy].sort(), ['alpha', 'beta']);
  });

  it('moves to the other upstream when one fails, and stops calling it once its breaker is open', async () => {
    alphaSim.configure({ modelFaults: { 'sim-small': { fault: 'error', status: 503 } } });
    for (let i = 0; i < 60 && (await breakerState('alpha:sim-small')) !== 'open'; i++) {
      const res = await chat();
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers.get('x-upstream'), 'beta');
    }
    assert.equal(await breakerState('alpha:sim-small'), 'open');
    const alphaCalls = chatCalls(alphaSim);
    for (let i = 0; i < 10; i++) {
      const res = await chat();
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers.get('x-upstream'), 'beta');
    }
    assert.equal(chatCalls(alphaSim), alphaCalls, 'the open upstream was skipped');
  });

  it("serves the fallback model while the primary model's breaker is open", async () => {
    alphaSim.configure({ modelFaults: { 'sim-large': { fault: 'error', status: 500 } } });
    for (let i = 0; i < 4; i++) {
      const res = await chat({ model: 'sim-large' });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers.get('x-upstream'), 'beta');
      assert.equal(res.json.model, 'sim-backup');
    }
    assert.equal(await breakerState('alpha:sim-large'), 'open');
    const alphaCalls = chatCalls(alphaSim);
    const res = await chat({ model: 'sim-large' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get('x-upstream'), 'beta');
    assert.equal(res.json.model, 'sim-backup');
    assert.equal(betaSim.stats.lastBody && (betaSim.stats.lastBody as { model: string }).model, 'sim-backup');
    assert.equal(chatCalls(alphaSim), alphaCalls);
  });

  it("answers the first upstream's error when the model and its fallback both fail", async () => {
    const reset = await postJson(`${gateway.url}/admin/breakers/alpha:sim-large/reset`, {}, ADMIN);
    assert.equal(reset.status, 200, reset.text);
    alphaSim.configure({ modelFaults: { 'sim-large': { fault: 'error', status: 503 } } });
    betaSim.configure({ modelFaults: { 'sim-backup': { fault: 'error', status: 500 } } });
    const res = await chat({ model: 'sim-large' });
    assert.equal(res.status, 502, res.text);
    const error = expectErrorShape(res.json);
    assert.equal(error.type, 'upstream_error');
    assert.match(error.message, /alpha answered 503/, 'the first failure, not the fallback\'s 500');
  });

  it('answers 503 circuit_open with Retry-After once the model and every fallback are open', async () => {
    let last: Awaited<ReturnType<typeof chat>> | undefined;
    for (let i = 0; i < 12; i++) {
      last = await chat({ model: 'sim-large' });
      if (last.status === 503) break;
      assert.equal(last.status, 502, last.text);
    }
    assert.equal(last!.status, 503, last!.text);
    const error = expectErrorShape(last!.json);
    assert.equal(error.type, 'upstream_unavailable');
    assert.equal(error.code, 'circuit_open');
    assert.match(last!.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    const calls = chatCalls(alphaSim) + chatCalls(betaSim);
    assert.equal((await chat({ model: 'sim-large' })).status, 503);
    assert.equal(chatCalls(alphaSim) + chatCalls(betaSim), calls, 'refused without reaching either upstream');
  });
});
