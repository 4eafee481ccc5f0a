import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Redis from 'ioredis';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, expectErrorShape, getJson, postJson } from './support/http';
import { Stack, startStack } from './support/stack';
import { waitFor } from './support/wait';

const ADMIN_KEY = 'admin-breaker-cluster-key';
const ADMIN = { authorization: `Bearer ${ADMIN_KEY}` };
const KEY = 'alpha:sim-small';
const PROBES = 1;

const chatCalls = (sim: UpstreamSimulator) => sim.stats.requestsByPath['/v1/chat/completions'] ?? 0;
// High priority: open breakers lower the health score, and `critical` admits only high priority.
const chat = (gateway: GatewayProcess, extra: Record<string, unknown> = {}) =>
  postJson(`${gateway.url}/v1/chat/completions`, chatBody(extra), { 'x-priority': 'high' });

async function stateOf(gateway: GatewayProcess): Promise<string> {
  const res = await getJson(`${gateway.url}/admin/breakers`, ADMIN);
  assert.equal(res.status, 200, res.text);
  return res.json.data.find((b: { key: string }) => b.key === KEY)?.state ?? 'closed';
}

/**
 * Fails requests until the breaker is open on every instance. Any instance's worker may run a request,
 * so the failures spread over the instances' windows until one of them opens and tells the others.
 */
async function openEverywhere(gateways: GatewayProcess[]): Promise<void> {
  await waitFor(
    'every instance to show the breaker open',
    async () => {
      const states = await Promise.all(gateways.map(stateOf));
      if (states.every((s) => s === 'open')) return true;
      if (!states.includes('open')) assert.ok([502, 503].includes((await chat(gateways[0])).status));
      return undefined;
    },
    5000,
    20,
  );
}

describe('breakers across three instances on one Redis', () => {
  let stack: Stack;
  let simulator: UpstreamSimulator;
  let gateways: GatewayProcess[];

  before(async () => {
    stack = await startStack({
      upstreams: (url) => ({ upstreams: [{ name: 'alpha', url, models: ['sim-small'] }] }),
      env: {
        BREAKER_WINDOW_SIZE: '10',
        BREAKER_MIN_CALLS: '4',
        BREAKER_COOLDOWN_MS: '1500',
        BREAKER_HALF_OPEN_PROBES: String(PROBES),
        // One call per request, so that the upstream's request count is the gateways' attempt count.
        RETRY_MAX_ATTEMPTS: '1',
        REQUEST_TIMEOUT_MS: '5000',
        MAX_CONCURRENT_REQUESTS: '20',
        ADMIN_API_KEY: ADMIN_KEY,
      },
      gateway: false,
    });
    simulator = stack.simulator;
    gateways = await Promise.all([stack.startGateway(), stack.startGateway(), stack.startGateway()]);
  });

  after(() => stack?.stop());

  it('sends exactly one probe round to an upstream that failed and healed', async () => {
    simulator.configure({ modelFaults: { 'sim-small': { fault: 'error', status: 503 } } });
    await openEverywhere(gateways);

    simulator.configure({ modelFaults: {} });
    for (const gateway of gateways) await waitFor('the cooldown to end everywhere', async () => (await stateOf(gateway)) === 'half_open', 5000, 50);
    const before = chatCalls(simulator);
    // Three requests at each instance at once; probes are slow, so the round is still running when all
    // arrive. Without a shared round, every instance whose worker gets a request would probe.
    const answers = await Promise.all(gateways.flatMap((g) => [0, 1, 2].map(() => chat(g, { x_sim: { latencyMs: 1000 } }))));
    const served = answers.filter((a) => a.status === 200).length;
    for (const refused of answers.filter((a) => a.status !== 200)) {
      assert.equal(refused.status, 503, refused.text);
      assert.equal(expectErrorShape(refused.json).code, 'circuit_open');
      assert.ok(refused.headers.get('retry-after'));
    }
    assert.equal(chatCalls(simulator) - before, PROBES, 'the upstream saw one probe round, not one per instance');
    assert.equal(served, PROBES);

    for (const gateway of gateways) await waitFor('the round to close the breaker everywhere', async () => (await stateOf(gateway)) === 'closed', 3000, 50);
    for (const gateway of gateways) assert.equal((await chat(gateway)).status, 200);
  });

  it('starts closed after a restart on the same Redis once the upstream has healed', async () => {
    simulator.configure({ modelFaults: { 'sim-small': { fault: 'error', status: 503 } } });
    await openEverywhere(gateways);
    simulator.configure({ modelFaults: {} });
    // Every instance stops while the breaker is open; the opening ends (and the upstream heals) meanwhile.
    await Promise.all(gateways.map((g) => g.stop('SIGKILL')));
    const redis = new Redis(stack.redis.url);
    try {
      assert.ok((await redis.pttl(`bulwark:breaker:open:${KEY}`)) > 0, 'Redis holds the opening while it runs');
      await waitFor('the opening to expire in Redis', async () => (await redis.pttl(`bulwark:breaker:open:${KEY}`)) === -2, 5000, 100);
    } finally {
      redis.disconnect();
    }
    const fresh = await stack.startGateway();
    assert.equal(await stateOf(fresh), 'closed', 'the ended opening was not replayed');
    const before = chatCalls(simulator);
    const res = await chat(fresh);
    assert.equal(res.status, 200, res.text);
    assert.equal(chatCalls(simulator) - before, 1);
    assert.equal(await stateOf(fresh), 'closed');
  });
});
