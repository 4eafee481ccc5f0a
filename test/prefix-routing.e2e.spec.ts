import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { parsePrometheusText } from '../src/metrics/prometheus-text';
import { getJson, postJson } from './support/http';
import { Stack, startStack } from './support/stack';
import { waitFor } from './support/wait';

const MODEL = 'sim-small';
const CHAT = '/v1/chat/completions';

/** The simulator of the stack (`r0`) and two more replicas, each with its own prefix cache. */
async function fleet(options: ConstructorParameters<typeof UpstreamSimulator>[0], env: Record<string, string>, hedge?: unknown, weights?: number[]) {
  const extra = [new UpstreamSimulator(options), new UpstreamSimulator(options)];
  const urls = await Promise.all(extra.map(async (s) => (await s.start()).baseUrl));
  const stack = await startStack({
    simulator: options,
    upstreams: (first) => ({
      upstreams: [first, ...urls].map((url, i) => ({ name: `r${i}`, url, models: [MODEL], ...(weights ? { weight: weights[i] } : {}) })),
      ...(hedge ? { hedge } : {}),
    }),
    env: { UPSTREAM_METRICS_POLL_MS: '0', MAX_CONCURRENT_REQUESTS: '40', MAX_QUEUE_SIZE: '200', ...env },
    gateway: false,
  });
  await stack.startGateway();
  await stack.startGateway();
  const replicas = [stack.simulator, ...extra];
  return {
    stack,
    replicas,
    stop: async () => {
      await stack.stop();
      await Promise.all(extra.map((s) => s.stop()));
    },
  };
}

const sentence = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');

describe('prefix-aware routing across gateway instances', () => {
  let setup: Awaited<ReturnType<typeof fleet>>;
  let stack: Stack;

  before(async () => {
    setup = await fleet({ latencyMs: 5, chunkIntervalMs: 1, prefixCacheTokens: 100_000, blockTokens: 8 }, { ROUTING: 'prefix-aware', PREFIX_BLOCK_CHARS: '64', PREFIX_LOAD_EPSILON: '0.5' });
    stack = setup.stack;
  });

  after(async () => {
    await setup?.stop();
  });

  it('sends every turn of a conversation to the replica that served its earlier turns, whichever instance receives it', async () => {
    const clients = stack.gateways.map((g) => new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'none', maxRetries: 0 }));
    // By user, by X-Session-Id, and by the prompt alone.
    const conversations = [
      { key: { user: 'alice' } as Record<string, string>, headers: {} as Record<string, string> },
      { key: {}, headers: { 'x-session-id': 'session-bob' } },
      { key: {}, headers: {} },
      { key: { prompt_cache_key: 'carol' }, headers: {} },
    ];
    for (const [c, conversation] of conversations.entries()) {
      const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: 'system', content: sentence(`conversation${c}system`, 30) }];
      const servedBy: string[] = [];
      const cached: number[] = [];
      for (let turn = 0; turn < 4; turn++) {
        messages.push({ role: 'user', content: sentence(`c${c}t${turn}q`, 12) });
        const { data, response } = await clients[turn % 2].chat.completions
          .create({ model: MODEL, messages, ...conversation.key }, { headers: conversation.headers })
          .withResponse();
        servedBy.push(String(response.headers.get('x-upstream')));
        cached.push(data.usage?.prompt_tokens_details?.cached_tokens ?? -1);
        messages.push({ role: 'assistant', content: data.choices[0].message.content ?? '' });
      }
      assert.equal(new Set(servedBy).size, 1, `conversation ${c} went to ${servedBy.join(', ')}`);
      assert.ok(cached.slice(1).every((n) => n > 0), `later turns found their prefix cached: ${cached.join(', ')}`);
    }
  });

  it('refuses an X-Session-Id longer than 128 characters with the contract\'s error, not a 500', async () => {
    const answer = await postJson(`${stack.gateways[0].url}${CHAT}`, { model: MODEL, messages: [{ role: 'user', content: 'hi' }] }, { 'x-session-id': 's'.repeat(129) });
    assert.equal(answer.status, 400);
    assert.equal(answer.json.error.code, 'invalid_header');
    assert.equal(answer.json.error.param, 'X-Session-Id');
  });

  it('keeps one hot prefix within the load bound: no replica carries more than (1 + ε) × the average, per instance', async () => {
    const hot = { model: MODEL, user: 'hot', messages: [{ role: 'user', content: sentence('hot', 40) }], max_tokens: 4 };
    const first = await postJson(`${stack.gateways[0].url}${CHAT}`, hot);
    assert.equal(first.status, 200);
    const holder = Number(String(first.headers.get('x-upstream')).slice(1));
    for (const r of setup.replicas) {
      r.configure({ latencyMs: 600 });
      r.resetStats();
    }
    // 18 at once, 9 through each instance: ε = 0.5 over 3 replicas allows each instance at most
    // ceil(1.5 × 9 / 3) = 5 on one replica, so 10 in all; without the bound the holder would get all 18.
    const answers = await Promise.all(Array.from({ length: 18 }, (_, i) => postJson(`${stack.gateways[i % 2].url}${CHAT}`, hot, {}, 30_000)));
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [200]);
    const peaks = setup.replicas.map((r) => r.stats.maxInFlight);
    assert.ok(Math.max(...peaks) <= 10, `peak in flight per replica: ${peaks.join(', ')}`);
    assert.ok(peaks[holder] >= 3, `the replica holding the prefix still takes the largest share it may: ${peaks.join(', ')}`);
    assert.equal(setup.replicas.reduce((sum, r) => sum + (r.stats.requestsByPath[CHAT] ?? 0), 0), 18);
    for (const r of setup.replicas) r.configure({ latencyMs: 5 });
  });

  it('shows each replica\'s KV-cache use and prefix-cache hit rate on /health once polled', async () => {
    // Polling is off in this stack: one more gateway polls every 200 ms.
    const polling = await stack.startGateway({ UPSTREAM_METRICS_POLL_MS: '200' });
    await postJson(`${polling.url}${CHAT}`, { model: MODEL, user: 'poll', messages: [{ role: 'user', content: sentence('poll', 20) }] });
    const upstreams = await waitFor('polled figures on /health', async () => {
      const list = (await getJson(`${polling.url}/health`)).json?.details?.upstreams?.upstreams as { name: string; kv_cache_usage: number | null; prefix_cache_hit_rate: number | null }[];
      return list?.every((u) => u.kv_cache_usage !== null) && list.some((u) => u.prefix_cache_hit_rate !== null) ? list : undefined;
    });
    assert.deepEqual(upstreams.map((u) => u.name), ['r0', 'r1', 'r2']);
    for (const u of upstreams) assert.equal(typeof (u as { kv_cache_pressure?: unknown }).kv_cache_pressure, 'boolean');
  });
});

/** Sum of a counter's samples over every gateway's /metrics, for the labels given. */
async function counterSum(urls: string[], name: string, labels: Record<string, string>): Promise<number> {
  let sum = 0;
  for (const url of urls) {
    for (const sample of parsePrometheusText((await getJson(`${url}/metrics`)).text)) {
      if (sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) sum += sample.value;
    }
  }
  return sum;
}

describe('hedged attempts across gateway instances', () => {
  let setup: Awaited<ReturnType<typeof fleet>>;
  const RATIO = 0.25;
  const REQUESTS = 20;

  before(async () => {
    // Weighted routing sends about 8 calls in 10 to r0, so more calls want a hedge than the budget allows,
    // whatever the machine's timing (least-loaded routing would learn to avoid r0).
    setup = await fleet(
      { latencyMs: 0, chunkIntervalMs: 1 },
      { ROUTING: 'weighted', HEDGE_BUDGET_RATIO: String(RATIO) },
      { [MODEL]: { minDelayMs: 400, maxDelayMs: 400 } },
      [8, 1, 1],
    );
    // r0 holds back every call for 2 s: a hedge (within the budget) answers for it from r1 or r2.
    setup.replicas[0].configure({ stall: { share: 1, ms: 2000 } });
  });

  after(async () => {
    await setup?.stop();
  });

  it('hedges a late first byte on another replica, within the shared budget, and aborts the losing call', async () => {
    const urls = setup.stack.gateways.map((g) => g.url);
    const hedgedAnswers: string[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const answer = await postJson(`${urls[i % 2]}${CHAT}`, { model: MODEL, messages: [{ role: 'user', content: `question ${i}` }], max_tokens: 4 });
      assert.equal(answer.status, 200);
      if (answer.headers.get('x-hedged') === 'true') hedgedAnswers.push(String(answer.headers.get('x-upstream')));
    }
    const won = await counterSum(urls, 'bulwark_hedges_total', { outcome: 'won' });
    const lost = await counterSum(urls, 'bulwark_hedges_total', { outcome: 'lost' });
    const skipped = await counterSum(urls, 'bulwark_hedges_total', { outcome: 'skipped' });
    const [slow, ...fast] = setup.replicas;
    assert.ok(won >= 1, `some hedge won (won ${won}, lost ${lost}, skipped ${skipped})`);
    assert.ok(won + lost <= RATIO * REQUESTS, `hedges ${won + lost} within ${RATIO} of ${REQUESTS} calls`);
    assert.ok(skipped >= 1, 'the budget turned some hedges down');
    assert.equal(hedgedAnswers.length, won, 'X-Hedged: true on exactly the answers a hedge gave');
    assert.ok(hedgedAnswers.every((name) => name !== 'r0'), 'a hedge never goes to the stalled replica it hedges');
    // Every hedge that won left r0 with a call it never finished: the gateway hung up on it at once.
    // (A hedge that lost, if a busy machine made a fast replica late, may have been the one hung up on.)
    await waitFor('the losing calls aborted on r0', () => slow.stats.clientAborts >= won || undefined);
    assert.ok(slow.stats.clientAborts <= won + lost);
    assert.ok(fast.reduce((sum, r) => sum + r.stats.clientAborts, 0) <= lost);
    const calls = setup.replicas.reduce((sum, r) => sum + (r.stats.requestsByPath[CHAT] ?? 0), 0);
    assert.equal(calls, REQUESTS + won + lost, 'one extra upstream call per hedge, no more');
  });
});
