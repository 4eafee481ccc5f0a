import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, expectErrorShape, getJson, postJson } from './support/http';
import { GatewayStack, Stack, startStack } from './support/stack';
import { waitFor } from './support/wait';

const ADMIN_KEY = 'admin-breaker-e2e-key';
const ADMIN = { authorization: `Bearer ${ADMIN_KEY}` };

/** Breaker settings small enough to open and heal within a test. */
const BREAKER_ENV = {
  BREAKER_WINDOW_SIZE: '10',
  BREAKER_MIN_CALLS: '4',
  BREAKER_FAILURE_RATIO: '0.5',
  BREAKER_COOLDOWN_MS: '1500',
  BREAKER_HALF_OPEN_PROBES: '1',
  // One call per request, so that the upstream's request count is the gateway's attempt count.
  RETRY_MAX_ATTEMPTS: '1',
  REQUEST_TIMEOUT_MS: '5000',
  ADMIN_API_KEY: ADMIN_KEY,
};

const chatCalls = (sim: UpstreamSimulator) => sim.stats.requestsByPath['/v1/chat/completions'] ?? 0;

/**
 * A chat completion at high priority. Open breakers and failures lower the health score, and the
 * `critical` strategy admits only high priority: these tests are about the breakers, not that rule.
 */
const chat = (gateway: GatewayProcess, extra: Record<string, unknown> = {}) =>
  postJson(`${gateway.url}/v1/chat/completions`, chatBody(extra), { 'x-priority': 'high' });

async function breakerOf(gateway: GatewayProcess, key: string): Promise<any> {
  const res = await getJson(`${gateway.url}/admin/breakers`, ADMIN);
  assert.equal(res.status, 200, res.text);
  return res.json.data.find((b: { key: string }) => b.key === key);
}

describe('circuit breakers: opening, refusing fast, healing', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;

  before(async () => {
    const models = ['sim-small', 'sim-large', 'org/tiny'];
    ({ simulator, gateway } = stack = await startStack({
      simulator: { latencyMs: 5, chunkIntervalMs: 5, models },
      upstreams: (url) => ({ upstreams: [{ name: 'alpha', url, models }] }),
      env: BREAKER_ENV,
    }));
  });

  after(() => stack?.stop());

  it('keeps /admin/breakers for the admin key', async () => {
    const anonymous = await getJson(`${gateway.url}/admin/breakers`);
    assert.ok([401, 403].includes(anonymous.status), `got ${anonymous.status}`);
    expectErrorShape(anonymous.json);
    const admin = await getJson(`${gateway.url}/admin/breakers`, ADMIN);
    assert.equal(admin.status, 200);
    assert.equal(admin.json.object, 'list');
    assert.ok(Array.isArray(admin.json.data));
  });

  it('answers 404 breaker_not_found when resetting an unknown breaker', async () => {
    const res = await postJson(`${gateway.url}/admin/breakers/alpha:no-such-model/reset`, {}, ADMIN);
    assert.equal(res.status, 404);
    const error = expectErrorShape(res.json);
    assert.equal(error.type, 'not_found_error');
    assert.equal(error.code, 'breaker_not_found');
  });

  it('resets a breaker whose model name holds a slash, given its key URL-encoded', async () => {
    assert.equal((await chat(gateway, { model: 'org/tiny' })).status, 200);
    const res = await postJson(`${gateway.url}/admin/breakers/${encodeURIComponent('alpha:org/tiny')}/reset`, {}, ADMIN);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.key, 'alpha:org/tiny');
    assert.equal(res.json.model, 'org/tiny');
  });

  it('does not count client errors (an upstream 400) against the breaker', async () => {
    for (let i = 0; i < 6; i++) {
      const res = await chat(gateway, { model: 'sim-large', x_sim: { fault: 'error', status: 400 } });
      assert.equal(res.status, 400, res.text);
    }
    const breaker = await breakerOf(gateway, 'alpha:sim-large');
    assert.equal(breaker?.state ?? 'closed', 'closed');
    assert.equal(breaker?.failures ?? 0, 0);
    assert.equal((await chat(gateway, { model: 'sim-large' })).status, 200);
  });

  it('opens after the window fills with 503s, then refuses fast without reaching the upstream', async () => {
    simulator.configure({ modelFaults: { 'sim-small': { fault: 'error', status: 503 } } });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await chat(gateway)).status);
    assert.deepEqual(statuses, [502, 502, 502, 502], 'the upstream failures themselves');

    const breaker = await breakerOf(gateway, 'alpha:sim-small');
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.upstream, 'alpha');
    assert.equal(breaker.model, 'sim-small');
    assert.equal(breaker.calls, 4);
    assert.equal(breaker.failures, 4);
    assert.equal(breaker.failure_ratio, 1);
    assert.ok(!Number.isNaN(Date.parse(breaker.opened_at)), `opened_at is ISO: ${breaker.opened_at}`);
    assert.ok(breaker.retry_in_ms > 0);

    const seen = chatCalls(simulator);
    for (let i = 0; i < 5; i++) {
      const refused = await chat(gateway);
      assert.equal(refused.status, 503, refused.text);
      const error = expectErrorShape(refused.json);
      assert.equal(error.type, 'upstream_unavailable');
      assert.equal(error.code, 'circuit_open');
      assert.match(refused.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
      assert.equal(refused.headers.get('x-should-retry'), 'true');
    }
    assert.equal(chatCalls(simulator), seen, 'refused requests never reached the upstream');

    // Another model of the same upstream has its own breaker and still serves.
    assert.equal((await chat(gateway, { model: 'sim-large' })).status, 200);
  });

  it('closes again through a probe once the upstream heals and the cooldown has passed', async () => {
    simulator.configure({ modelFaults: {} });
    const served = await waitFor(
      'a request to be served again',
      async () => {
        const res = await chat(gateway);
        if (res.status !== 200) assert.equal(res.json?.error?.code, 'circuit_open', res.text);
        return res.status === 200 ? res : undefined;
      },
      15_000,
      200,
    );
    assert.equal(served.headers.get('x-upstream'), 'alpha');
    const breaker = await breakerOf(gateway, 'alpha:sim-small');
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.opened_at, null);
    assert.equal(breaker.retry_in_ms, 0);
  });

  it('resets an open breaker on request', async () => {
    simulator.configure({ modelFaults: { 'sim-small': { fault: 'error', status: 500 } } });
    for (let i = 0; i < 4; i++) await chat(gateway);
    assert.equal((await breakerOf(gateway, 'alpha:sim-small')).state, 'open');
    simulator.configure({ modelFaults: {} });
    const reset = await postJson(`${gateway.url}/admin/breakers/${encodeURIComponent('alpha:sim-small')}/reset`, {}, ADMIN);
    assert.equal(reset.status, 200, reset.text);
    assert.equal(reset.json.key, 'alpha:sim-small');
    assert.equal(reset.json.state, 'closed');
    assert.equal(reset.json.calls, 0);
    assert.equal((await chat(gateway)).status, 200, 'served at once, no cooldown');
  });
});

describe('circuit breakers shared by two instances on one Redis', () => {
  let stack: Stack;
  let simulator: UpstreamSimulator;
  let worker: GatewayProcess;
  let front: GatewayProcess;
  const key = 'alpha:sim-small';

  before(async () => {
    stack = await startStack({
      upstreams: (url) => ({ upstreams: [{ name: 'alpha', url, models: ['sim-small'] }] }),
      env: { ...BREAKER_ENV, BREAKER_COOLDOWN_MS: '60000' },
      gateway: false,
    });
    simulator = stack.simulator;
    // Only `worker` calls the upstream, so only its breaker sees the failures; `front` must hear of them.
    [worker, front] = await Promise.all([stack.startGateway(), stack.startGateway({ WORKER_ENABLED: 'false' })]);
  });

  after(() => stack?.stop());

  it('a breaker opened by one instance is open on the other', async () => {
    simulator.configure({ modelFaults: { 'sim-small': { fault: 'error', status: 503 } } });
    for (let i = 0; i < 4; i++) {
      const res = await chat(worker);
      assert.equal(res.status, 502, res.text);
    }
    assert.equal((await breakerOf(worker, key)).state, 'open');
    await waitFor('the other instance to show the breaker open', async () => (await breakerOf(front, key))?.state === 'open', 3_000, 50);
    const refused = await chat(front);
    assert.equal(refused.status, 503, refused.text);
    assert.equal(expectErrorShape(refused.json).code, 'circuit_open');
  });

  it('a reset on one instance closes it on both', async () => {
    simulator.configure({ modelFaults: {} });
    const reset = await postJson(`${front.url}/admin/breakers/${key}/reset`, {}, ADMIN);
    assert.equal(reset.status, 200, reset.text);
    assert.equal(reset.json.state, 'closed');
    await waitFor('the instance that opened it to show it closed', async () => (await breakerOf(worker, key))?.state === 'closed', 3_000, 50);
    const served = await chat(front);
    assert.equal(served.status, 200, served.text);
    assert.equal(served.headers.get('x-upstream'), 'alpha');
  });
});
