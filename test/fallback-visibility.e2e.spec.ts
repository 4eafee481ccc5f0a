import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { GatewayProcess, startGateway } from './support/gateway-process';
import { chatBody, getJson, parseSse, postJson, send } from './support/http';
import { startRedis, TestRedis } from './support/redis-server';

/** A fault on the first `times` requests sharing a fresh key: the fallback request after it is served. */
const failFirst = (times: number) => ({ fault: 'error', status: 500, times, key: randomUUID() });

describe('fallbacks are visible: the built-in simulator falls back from sim-large to sim-small', () => {
  let redis: TestRedis;
  let gateway: GatewayProcess;

  before(async () => {
    redis = await startRedis();
    // Neither UPSTREAM_URL nor UPSTREAMS_FILE: the gateway serves from its built-in simulator.
    gateway = await startGateway({ env: { REDIS_URL: redis.url, RETRY_MAX_ATTEMPTS: '1', REQUEST_TIMEOUT_MS: '10000' } });
  });

  after(async () => {
    await gateway?.stop();
    await redis?.stop();
  });

  it('names the model that answered and the one asked for in X-Model and X-Fallback-From', async () => {
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ model: 'sim-large', x_sim: failFirst(1) }), { 'x-priority': 'high' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.model, 'sim-small');
    assert.equal(res.headers.get('x-model'), 'sim-small');
    assert.equal(res.headers.get('x-fallback-from'), 'sim-large');
  });

  it('sets the same headers on a streamed answer', async () => {
    const response = await send(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'x-priority': 'high' },
      body: chatBody({ model: 'sim-large', stream: true, x_sim: failFirst(1) }),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-model'), 'sim-small');
    assert.equal(response.headers.get('x-fallback-from'), 'sim-large');
    assert.equal(parseSse(await response.text()).at(-1), '[DONE]');
  });

  it('sends X-Model without X-Fallback-From when the model asked for answered', async () => {
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ model: 'sim-large' }));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get('x-model'), 'sim-large');
    assert.equal(res.headers.get('x-fallback-from'), null);
  });

  it('counts fallbacks in bulwark_fallbacks_total{from,to} and logs each once', async () => {
    const metrics = await getJson(`${gateway.url}/metrics`);
    assert.match(metrics.text, /^bulwark_fallbacks_total\{from="sim-large",to="sim-small"\} 2$/m);
    const lines = gateway.logLines().filter((line) => typeof line.msg === 'string' && line.msg.startsWith('fallback:'));
    assert.equal(lines.length, 2);
    assert.deepEqual([lines[0].from, lines[0].to, lines[0].upstream], ['sim-large', 'sim-small', 'simulator']);
  });
});
