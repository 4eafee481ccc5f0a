import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { chatBody, getJson, postJson } from './support/http';
import { GatewayStack, Stack, startStack } from './support/stack';

const CHAT = '/v1/chat/completions';

/** Sends `total` chat requests from `clients` concurrent closed-loop clients, round-robin over `urls`; returns the statuses. */
async function load(urls: string[], clients: number, total: number): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < total) {
        const url = urls[next++ % urls.length];
        statuses.push((await postJson(`${url}${CHAT}`, chatBody(), {}, 30_000)).status);
      }
    }),
  );
  return statuses;
}

const served = (simulator: UpstreamSimulator) => simulator.stats.requestsByPath[CHAT] ?? 0;

describe('least-loaded routing: the faster replica serves most requests', () => {
  const slow = new UpstreamSimulator({ latencyMs: 150 });
  let stack: GatewayStack;

  before(async () => {
    const { baseUrl: slowUrl } = await slow.start();
    stack = await startStack({
      simulator: { latencyMs: 20 },
      upstreams: (fastUrl) => ({
        upstreams: [
          { name: 'fast', url: fastUrl, models: ['sim-small'] },
          { name: 'slow', url: slowUrl, models: ['sim-small'] },
        ],
      }),
      env: { MAX_CONCURRENT_REQUESTS: '8', MAX_QUEUE_SIZE: '200' },
    });
  });

  after(async () => {
    await stack?.stop();
    await slow.stop();
  });

  it('sends more than 60 % of concurrent requests to the 20 ms replica over the 150 ms one', async () => {
    const statuses = await load([stack.url], 8, 160);
    assert.ok(statuses.every((s) => s === 200), `statuses: ${[...new Set(statuses)]}`);
    const fast = served(stack.simulator);
    const total = fast + served(slow);
    assert.equal(total, 160);
    assert.ok(fast / total > 0.6, `fast replica served ${fast}/${total}`);
    const metrics = (await getJson(`${stack.url}/metrics`)).text;
    assert.match(metrics, new RegExp(`bulwark_routed_total\\{upstream="fast",model="sim-small"\\} ${fast}\\b`));
  });
});

describe('weighted routing (ROUTING=weighted): the split follows the weights', () => {
  const second = new UpstreamSimulator({ latencyMs: 5 });
  let stack: GatewayStack;

  before(async () => {
    const { baseUrl: secondUrl } = await second.start();
    stack = await startStack({
      simulator: { latencyMs: 5 },
      upstreams: (firstUrl) => ({
        upstreams: [
          { name: 'heavy', url: firstUrl, models: ['sim-small'], weight: 3 },
          { name: 'light', url: secondUrl, models: ['sim-small'], weight: 1 },
        ],
      }),
      env: { ROUTING: 'weighted', MAX_CONCURRENT_REQUESTS: '8', MAX_QUEUE_SIZE: '200' },
    });
  });

  after(async () => {
    await stack?.stop();
    await second.stop();
  });

  it('sends about three quarters of 200 requests to the weight-3 upstream', async () => {
    const statuses = await load([stack.url], 8, 200);
    assert.ok(statuses.every((s) => s === 200));
    const heavy = served(stack.simulator);
    const share = heavy / (heavy + served(second));
    assert.ok(share > 0.62 && share < 0.88, `weight-3 share ${share}`);
  });
});

describe('bulkheads: maxConcurrency holds across instances', () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack({
      simulator: { latencyMs: 150 },
      upstreams: (url) => ({ upstreams: [{ name: 'capped', url, models: ['sim-small'], maxConcurrency: 2 }] }),
      env: { MAX_CONCURRENT_REQUESTS: '6', MAX_QUEUE_SIZE: '100' },
      gateway: false,
    });
    await stack.startGateway();
    await stack.startGateway();
  });

  after(async () => {
    await stack?.stop();
  });

  it('never lets the upstream see a third concurrent request from two gateways, answers all, and shows the wait', async () => {
    const urls = stack.gateways.map((g) => g.url);
    let sawWaiting = false;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const url of urls) {
          const upstreams = (await getJson(`${url}/health`)).json?.details?.upstreams?.upstreams ?? [];
          if (upstreams.some((u: { waiting?: number }) => (u.waiting ?? 0) > 0)) sawWaiting = true;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    let statuses: number[];
    try {
      statuses = await load(urls, 16, 40);
    } finally {
      sampling = false;
      await sampler;
    }
    assert.ok(statuses.every((s) => s === 200), `statuses: ${[...new Set(statuses)]}`);
    assert.equal(served(stack.simulator), 40);
    assert.ok(stack.simulator.stats.maxInFlight <= 2, `upstream saw ${stack.simulator.stats.maxInFlight} at once`);
    assert.equal(stack.simulator.stats.maxInFlight, 2, 'the cap was reached');
    assert.ok(sawWaiting, '/health showed requests waiting for a permit');
    const health = (await getJson(`${urls[0]}/health`)).json.details.upstreams.upstreams[0];
    assert.equal(health.max_concurrency, 2);
  });
});
