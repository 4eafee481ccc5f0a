import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parsePrometheusText } from '../src/metrics/prometheus-text';
import { chatBody, getJson, postJson, postSse } from './support/http';
import { GatewayStack, startStack } from './support/stack';
import { waitFor } from './support/wait';

async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const samples = parsePrometheusText((await getJson(`${url}/metrics`)).text);
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

const health = async (url: string) => (await getJson(`${url}/health`)).json.graceful_degradation;

describe('admission is counted once the request is queued', () => {
  let stack: GatewayStack;

  before(async () => {
    stack = await startStack();
  });

  after(async () => {
    await stack?.stop();
  });

  it('two 400s move neither bulwark_admissions_total nor /health rejection_rate; a served request does', async () => {
    const admittedBefore = await metric(stack.url, 'bulwark_admissions_total');
    const rateBefore = (await health(stack.url)).rejection_rate;
    for (const body of [chatBody({ messages: 'not a list' }), chatBody({ max_tokens: -5 })]) {
      const res = await postJson(`${stack.url}/v1/chat/completions`, body);
      assert.equal(res.status, 400, res.text);
    }
    assert.equal(await metric(stack.url, 'bulwark_admissions_total'), admittedBefore);
    assert.equal((await health(stack.url)).rejection_rate, rateBefore);
    assert.equal((await postJson(`${stack.url}/v1/chat/completions`, chatBody())).status, 200);
    assert.equal(await metric(stack.url, 'bulwark_admissions_total'), admittedBefore + 1);
  });
});

describe('size-aware deadlines: a request too big for its deadline is refused at the door', () => {
  let stack: GatewayStack;

  before(async () => {
    // Streams take 4 ms per token: the gateway learns the rate from the warm-up requests.
    stack = await startStack({ simulator: { latencyMs: 5, chunkIntervalMs: 4 }, env: { MAX_CONCURRENT_REQUESTS: '2' } });
  });

  after(async () => {
    await stack?.stop();
  });

  it('with one slot busy for 2 s, 1,000 tokens in 1 s is refused deadline_unreachable and 5 tokens is served', async () => {
    const chat = `${stack.url}/v1/chat/completions`;
    // Cold: nothing learned yet, so size alone refuses nobody.
    const cold = await postJson(chat, chatBody({ max_tokens: 1000, x_sim: { chunks: 3 } }), { 'x-request-timeout-ms': '1000' });
    assert.equal(cold.status, 200, cold.text);
    for (let i = 0; i < 4; i++) {
      const warm = await postSse(chat, chatBody({ stream: true, max_tokens: 50, x_sim: { chunks: 50 } }));
      assert.equal(warm.events.at(-1), '[DONE]');
    }
    const busy = postJson(chat, chatBody({ x_sim: { latencyMs: 2000 } }), {}, 10_000);
    await waitFor('the busy slot to start', () => (stack.simulator.stats.running >= 1 ? true : undefined));

    const big = await postJson(chat, chatBody({ max_tokens: 1000, x_sim: { chunks: 1000 }, stream: true }), { 'x-request-timeout-ms': '1000' });
    assert.equal(big.status, 503, big.text);
    assert.equal(big.json.error.code, 'deadline_unreachable');
    assert.ok(Number(big.headers.get('retry-after')) >= 1);

    const small = await postJson(chat, chatBody({ max_tokens: 5, x_sim: { chunks: 5 } }), { 'x-request-timeout-ms': '1000' });
    assert.equal(small.status, 200, small.text);
    assert.equal((await busy).status, 200);
    const ratio = await metric(stack.url, 'bulwark_service_time_estimate_ratio_count', { model: 'sim-small' });
    assert.ok(ratio >= 4, `estimate checks counted: ${ratio}`);
  });
});

describe('after an overload burst, a free slot is never wasted', () => {
  let stack: GatewayStack;

  before(async () => {
    stack = await startStack({ simulator: { latencyMs: 300 }, env: { MAX_CONCURRENT_REQUESTS: '1', MAX_QUEUE_SIZE: '4' } });
  });

  after(async () => {
    await stack?.stop();
  });

  it('drives the strategy to critical, then admits normal priority as soon as the queue is empty', async () => {
    const chat = `${stack.url}/v1/chat/completions`;
    // Closed-loop clients keep the queue full until the strategy is critical.
    let overloaded = true;
    const statuses: number[] = [];
    const client = async () => {
      while (overloaded) statuses.push((await postJson(chat, chatBody(), { 'x-priority': 'high' }, 20_000)).status);
    };
    const clients = Array.from({ length: 8 }, client);
    try {
      await waitFor('the strategy to reach critical', async () => ((await health(stack.url)).current_strategy === 'critical' ? true : undefined), 15_000, 50);
    } finally {
      overloaded = false;
      await Promise.all(clients);
    }
    assert.ok(statuses.includes(200) && statuses.includes(503), `burst statuses: ${[...new Set(statuses)]}`);
    // The burst is over: nothing waits, nothing runs.
    await waitFor('the queue to empty', async () => {
      const stats = (await getJson(`${stack.url}/v1/queue/stats`)).json;
      return stats.waiting === 0 && stack.simulator.stats.running === 0 ? true : undefined;
    });
    for (let i = 0; i < 5; i++) {
      const res = await postJson(chat, chatBody(), { 'x-priority': 'normal' });
      assert.equal(res.status, 200, `request ${i}: ${res.text}`);
    }
  });
});


