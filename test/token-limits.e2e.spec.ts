import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { GatewayProcess } from './support/gateway-process';
import { expectErrorShape, getJson, postJson, postSse } from './support/http';
import { Stack, startStack, TempFile, writeUpstreamsFile } from './support/stack';
import { waitFor } from './support/wait';

const KEYS = { jobs: 'sk-tok-jobs-4d4d', warm: 'sk-tok-warm-0c0c', burst: 'sk-tok-burst-5a1c', meter: 'sk-tok-meter-7b2d', retry: 'sk-tok-retry-3e9f', prio: 'sk-tok-prio-11aa', plain: 'sk-tok-plain-22bb' };
const BURST_TPM = 1200;
const METER_TPM = 6000;
const RETRY_TPM = 6000;
const JOBS_TPM = 2400;
/** Simulator answers have this many words unless max_tokens is lower: usage is then exactly predictable. */
const WORDS = 100;

/** OpenAI's formats: a count, and a Go duration at millisecond precision (`20ms`, `1s`, `8.64s`, `6m0s`). */
const COUNT = /^\d+$/;
const DURATION = /^(0s|[1-9]\d{0,2}ms|(\d+h)?(\d+m)?\d+(\.\d{1,3})?s)$/;

/** Prompt of `words` four-character words: the gateway's estimate (characters / 4) equals the simulator's count. */
const prompt = (words: number) => 'abc '.repeat(words);
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const chat = (words: number, maxTokens: number, extra: Record<string, unknown> = {}) => ({
  model: 'sim-small',
  messages: [{ role: 'user', content: prompt(words) }],
  max_tokens: maxTokens,
  ...extra,
});

function assertOpenAiHeaders(headers: Headers, kinds: ('requests' | 'tokens')[], label: string): void {
  for (const kind of kinds) {
    assert.match(headers.get(`x-ratelimit-limit-${kind}`) ?? '', COUNT, `${label}: limit-${kind}`);
    assert.match(headers.get(`x-ratelimit-remaining-${kind}`) ?? '', COUNT, `${label}: remaining-${kind}`);
    assert.match(headers.get(`x-ratelimit-reset-${kind}`) ?? '', DURATION, `${label}: reset-${kind}`);
  }
}

describe('token limits: one budget per key across three gateways on one Redis', () => {
  let stack: Stack;
  let file: TempFile;
  let gateways: GatewayProcess[];

  before(async () => {
    file = writeUpstreamsFile({
      tiers: { high: { serviceTiers: ['priority', 'default'] } },
      keys: [
        { name: 'warm', keyEnv: 'WARM_KEY', tokensPerMinute: 1_000_000 },
        { name: 'burst', keyEnv: 'BURST_KEY', tokensPerMinute: BURST_TPM, requestsPerMinute: 1000 },
        { name: 'meter', keyEnv: 'METER_KEY', tokensPerMinute: METER_TPM },
        { name: 'jobs', keyEnv: 'JOBS_KEY', tokensPerMinute: JOBS_TPM },
        { name: 'retry', keyEnv: 'RETRY_KEY', tokensPerMinute: RETRY_TPM },
        { name: 'prio', keyEnv: 'PRIO_KEY', tier: 'high' },
        { name: 'plain', keyEnv: 'PLAIN_KEY' },
      ],
    });
    stack = await startStack({
      simulator: { latencyMs: 5, chunkIntervalMs: 1, defaultChunks: WORDS },
      env: {
        API_KEYS_FILE: file.path,
        WARM_KEY: KEYS.warm,
        BURST_KEY: KEYS.burst,
        METER_KEY: KEYS.meter,
        JOBS_KEY: KEYS.jobs,
        RETRY_KEY: KEYS.retry,
        PRIO_KEY: KEYS.prio,
        PLAIN_KEY: KEYS.plain,
        MAX_CONCURRENT_REQUESTS: '64',
        MAX_QUEUE_SIZE: '256',
      },
      gateway: false,
    });
    gateways = await Promise.all([stack.startGateway(), stack.startGateway(), stack.startGateway()]);
    // A cold process on a loaded machine may miss the limiter's 500 ms deadline (and rightly fail closed).
    for (const gateway of gateways) {
      for (let i = 0; i < 3; i++) await postJson(`${gateway.url}/v1/chat/completions`, chat(1, 5), bearer(KEYS.warm));
    }
  });

  after(async () => {
    await stack?.stop();
    file?.remove();
  });

  it('admits no more tokens than the limit (plus what replenished) over all three instances, refusing the rest with 429', async () => {
    // Each request reserves 6 + 100 tokens and uses exactly that (6 prompt words, 100 output words).
    const reserved = 6 + WORDS;
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => postJson(`${gateways[i % 3].url}/v1/chat/completions`, chat(6, WORDS), bearer(KEYS.burst))),
    );
    const elapsedMs = Date.now() - started;
    const admitted = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status !== 200);
    const used = admitted.reduce((sum, a) => sum + a.json.usage.total_tokens, 0);
    for (const a of admitted) assert.equal(a.json.usage.total_tokens, reserved, 'usage equals the reservation: the bound below is exact');
    const replenished = Math.ceil((BURST_TPM * elapsedMs) / 60_000);
    assert.ok(used <= BURST_TPM + replenished, `${used} tokens admitted in ${elapsedMs} ms, limit ${BURST_TPM} + ${replenished} replenished`);
    assert.ok(admitted.length >= Math.floor(BURST_TPM / reserved), `at least a full bucket admitted (${admitted.length})`);
    assert.ok(admitted.length < 2 * Math.floor(BURST_TPM / reserved), 'not a budget per instance');
    assert.ok(refused.length > 0);
    for (const r of refused) {
      assert.equal(r.status, 429, r.text);
      const error = expectErrorShape(r.json);
      assert.deepEqual([error.type, error.code], ['rate_limit_error', 'tokens_rate_limited']);
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
      assert.ok(Number(r.headers.get('retry-after-ms')) >= 1);
      assert.equal(r.headers.get('x-should-retry'), 'true');
    }
    for (const a of answers) {
      assertOpenAiHeaders(a.headers, ['requests', 'tokens'], `status ${a.status}`);
      assert.equal(a.headers.get('x-ratelimit-limit-tokens'), String(BURST_TPM));
      assert.equal(a.headers.get('x-ratelimit-limit-requests'), '1000');
    }
  });

  it('settles a stream with include_usage by its usage, and a stream without it by what it relayed', async () => {
    const url = `${gateways[1].url}/v1/chat/completions`;
    const interval = 60_000 / METER_TPM;
    const started = Date.now();
    // A: reserves 4 + 1000, uses what its last chunk reports (4 + 100).
    const a = await postSse(url, chat(4, 1000, { stream: true, stream_options: { include_usage: true } }), bearer(KEYS.meter));
    assert.equal(a.status, 200);
    assertOpenAiHeaders(a.headers, ['tokens'], 'stream');
    assert.equal(a.headers.get('x-ratelimit-remaining-tokens'), String(METER_TPM - 1004), 'a fresh bucket less the reservation');
    assert.equal(a.headers.get('x-ratelimit-limit-requests'), null, 'no request limit, no request headers');
    const usageChunk = JSON.parse(a.events.at(-2)!);
    assert.equal(usageChunk.usage.total_tokens, 104);
    // B: its admission sees A settled at 104 tokens, not 1004.
    const b = await postJson(url, chat(4, 10), bearer(KEYS.meter));
    assert.equal(b.status, 200);
    const afterB = Number(b.headers.get('x-ratelimit-remaining-tokens'));
    const replenished = Math.ceil((Date.now() - started) / interval);
    assert.ok(afterB >= METER_TPM - 104 - 14 && afterB <= Math.min(METER_TPM - 14, METER_TPM - 104 - 14 + replenished), `after B: ${afterB}`);
    // C: no usage chunk; charged its prompt (4) plus the content chunks relayed.
    const cStarted = Date.now();
    const c = await postSse(url, chat(4, 1000, { stream: true }), bearer(KEYS.meter));
    const afterC = Number(c.headers.get('x-ratelimit-remaining-tokens'));
    const relayed = c.events.filter((e) => e !== '[DONE]' && /"content":"[^"]/.test(e)).length;
    assert.equal(relayed, WORDS);
    assert.ok(c.events.every((e) => e === '[DONE]' || JSON.parse(e).service_tier === 'default'), 'every chunk names its tier');
    const d = await postJson(url, chat(4, 10), bearer(KEYS.meter));
    const afterD = Number(d.headers.get('x-ratelimit-remaining-tokens'));
    const settledC = afterC + 1004 - (4 + relayed) - 14;
    const replenishedC = Math.ceil((Date.now() - cStarted) / interval);
    assert.ok(afterD >= settledC - 1 && afterD <= Math.min(METER_TPM - 14, settledC + replenishedC + 1), `after D: ${afterD}, expected ${settledC} + up to ${replenishedC}`);
    assert.equal(d.json.service_tier, 'default');
  });

  it("settles a job's reservation where it ran, by its usage, and gives a replayed submission's back; a background response likewise", async () => {
    const auth = bearer(KEYS.jobs);
    /** The key's remaining budget as /health shows it from a read of Redis after `since` (it reads every 2 s), once at least `atLeast`. */
    const remainingReaches = (atLeast: number, since: number) =>
      waitFor(
        `the jobs key's budget to show at least ${atLeast} left`,
        async () => {
          const budgets = (await getJson(`${gateways[2].url}/health`)).json.token_budgets;
          if (!budgets?.read_at || Date.parse(budgets.read_at) <= since) return undefined;
          const budget = budgets.keys.find((b: any) => b.key_name === 'jobs');
          return budget && budget.remaining >= atLeast ? budget.remaining : undefined;
        },
        15_000,
        250,
      );
    /** Tokens of `kind` counted for the key on every gateway together. */
    const counted = async (kind: string) => {
      let sum = 0;
      for (const gateway of gateways) {
        const match = new RegExp(`bulwark_tokens_total\\{key_name="jobs",model="sim-small",kind="${kind}"\\} (\\d+)`).exec((await getJson(`${gateway.url}/metrics`)).text);
        sum += Number(match?.[1] ?? 0);
      }
      return sum;
    };

    // A job reserves 4 + 1000 and uses 4 + 100; its replay (same Idempotency-Key, another gateway) queues nothing.
    const idempotency = { ...auth, 'idempotency-key': 'token-settlement-1' };
    const submitted = await postJson(`${gateways[0].url}/v1/jobs`, chat(4, 1000), idempotency);
    assert.equal(submitted.status, 202, submitted.text);
    assert.equal(submitted.headers.get('x-ratelimit-remaining-tokens'), String(JOBS_TPM - 1004));
    const replay = await postJson(`${gateways[1].url}/v1/jobs`, chat(4, 1000), idempotency);
    assert.equal(replay.status, 202, replay.text);
    assert.equal(replay.json.id, submitted.json.id);
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    const done = await waitFor(
      'the job to complete',
      async () => {
        const view = await getJson(`${gateways[2].url}/v1/jobs/${submitted.json.id}`, auth);
        return view.json?.status === 'completed' ? view.json : undefined;
      },
      15_000,
      100,
    );
    assert.equal(done.result.usage.total_tokens, 104);
    // Kept whole, the two reservations would leave 392 (plus 40 a second); settled, 2400 - 104.
    await remainingReaches(JOBS_TPM - 104 - 1, Date.now());
    await waitFor('the job to be counted', async () => (await counted('completion')) === 100, 5000, 100);

    // A background response: reserved 4 + 1000 at creation, settled by its worker to 4 + 100.
    const created = await postJson(`${gateways[1].url}/v1/responses`, { model: 'sim-small', input: prompt(4), max_output_tokens: 1000, background: true }, auth);
    assert.equal(created.status, 200, created.text);
    assert.equal(created.json.status, 'queued');
    const finished = await waitFor(
      'the background response to complete',
      async () => {
        const view = await getJson(`${gateways[0].url}/v1/responses/${created.json.id}`, auth);
        return view.json?.status === 'completed' ? view.json : undefined;
      },
      15_000,
      100,
    );
    assert.equal(finished.usage.input_tokens + finished.usage.output_tokens, 104);
    await remainingReaches(JOBS_TPM - 208 - 1, Date.now());
    await waitFor('both to be counted', async () => (await counted('completion')) === 200 && (await counted('prompt')) === 8, 5000, 100);
  });

  it("lets the openai SDK's own retry wait out a 429 (Retry-After, retry-after-ms) and then succeed", async () => {
    const url = `${gateways[2].url}/v1/chat/completions`;
    // Drain the bucket: large requests, then small ones, until the small one no longer fits.
    for (let i = 0; i < 3; i++) assert.equal((await postJson(url, chat(1400, 100), bearer(KEYS.retry))).status, 200);
    let refused;
    for (let i = 0; i < 40 && !refused; i++) {
      const res = await postJson(url, chat(1, WORDS), bearer(KEYS.retry));
      if (res.status === 429) refused = res;
    }
    assert.ok(refused, 'the small request stops fitting');
    const attempts: { status: number; at: number; retryAfterMs: number }[] = [];
    const client = new OpenAI({
      baseURL: `${gateways[2].url}/v1`,
      apiKey: KEYS.retry,
      maxRetries: 3,
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        attempts.push({ status: response.status, at: Date.now(), retryAfterMs: Number(response.headers.get('retry-after-ms')) });
        return response;
      },
    });
    // Twice the small request's size: it cannot have fitted again by the time it arrives.
    const answer = await client.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: prompt(200) }], max_tokens: WORDS });
    assert.equal(answer.object, 'chat.completion');
    assert.equal(attempts[0].status, 429, 'the first attempt was refused');
    assert.equal(attempts.at(-1)!.status, 200);
    for (let i = 1; i < attempts.length; i++) {
      // The SDK slept the announced delay before trying again: the bucket then had room.
      assert.ok(attempts[i].at - attempts[i - 1].at >= attempts[i - 1].retryAfterMs - 5, `attempt ${i + 1} waited`);
    }
  });

  it("refuses with 400 naming the limit a request that could never fit, and the SDK does not retry it", async () => {
    let calls = 0;
    const client = new OpenAI({
      baseURL: `${gateways[0].url}/v1`,
      apiKey: KEYS.burst,
      maxRetries: 3,
      fetch: (input, init) => {
        calls++;
        return fetch(input, init);
      },
    });
    await assert.rejects(client.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5000 }), (error: any) => {
      assert.equal(error.status, 400);
      assert.equal(error.code, 'tokens_exceed_limit');
      assert.equal(error.param, 'max_tokens');
      assert.match(error.message, new RegExp(`limit of ${BURST_TPM} tokens per minute`));
      return true;
    });
    assert.equal(calls, 1);
  });

  it('maps service_tier: priority for a key allowed it, 403 tier_not_allowed beyond, X-Service-Tier and the body say which served', async () => {
    const prio = new OpenAI({ baseURL: `${gateways[0].url}/v1`, apiKey: KEYS.prio, maxRetries: 0 });
    const served = await prio.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: 'hi' }], service_tier: 'priority' }).withResponse();
    assert.equal(served.data.service_tier, 'priority');
    assert.equal(served.response.headers.get('x-service-tier'), 'priority');
    const stream = await prio.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: 'hi' }], service_tier: 'priority', stream: true });
    for await (const chunk of stream) assert.equal(chunk.service_tier, 'priority');
    const flexRefused = await postJson(`${gateways[0].url}/v1/chat/completions`, chat(1, 5, { service_tier: 'flex' }), bearer(KEYS.prio));
    assert.equal(flexRefused.status, 403, 'the tiers section allows high keys no flex');

    const plain = new OpenAI({ baseURL: `${gateways[1].url}/v1`, apiKey: KEYS.plain, maxRetries: 2 });
    await assert.rejects(plain.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: 'hi' }], service_tier: 'priority' }), (error: any) => {
      assert.equal(error.status, 403);
      assert.equal(error.type, 'permission_error');
      assert.equal(error.code, 'tier_not_allowed');
      assert.match(error.message, /"priority"/);
      return true;
    });
    const flex = await postJson(`${gateways[1].url}/v1/responses`, { model: 'sim-small', input: 'hi', service_tier: 'flex' }, bearer(KEYS.plain));
    assert.equal(flex.status, 200);
    assert.deepEqual([flex.json.service_tier, flex.headers.get('x-service-tier')], ['flex', 'flex']);
    const unknown = await postJson(`${gateways[1].url}/v1/chat/completions`, chat(1, 5, { service_tier: 'turbo' }), bearer(KEYS.plain));
    assert.deepEqual([unknown.status, unknown.json.error.code, unknown.json.error.param], [400, 'invalid_body', 'service_tier']);
  });

  it('counts tokens per key name and model, and shows each limited key’s remaining budget on /health', async () => {
    const metrics = await getJson(`${gateways[1].url}/metrics`);
    assert.match(metrics.text, /bulwark_tokens_total\{key_name="meter",model="sim-small",kind="prompt"\} \d+/);
    assert.match(metrics.text, /bulwark_tokens_total\{key_name="meter",model="sim-small",kind="completion"\} \d+/);
    for (const key of Object.values(KEYS)) assert.ok(!metrics.text.includes(key), 'a key leaks');
    let budgets: any[] = [];
    for (let i = 0; i < 50 && !budgets.some((b) => b.key_name === 'burst'); i++) {
      budgets = (await getJson(`${gateways[0].url}/health`)).json.token_budgets?.keys ?? [];
      if (!budgets.length) await sleep(100);
    }
    const burst = budgets.find((b) => b.key_name === 'burst');
    assert.ok(burst, JSON.stringify(budgets));
    assert.deepEqual([burst.period, burst.limit], ['minute', BURST_TPM]);
    assert.ok(burst.remaining < BURST_TPM, 'the burst spent part of it');
    assert.deepEqual(budgets.map((b) => b.key_name).sort(), ['burst', 'jobs', 'meter', 'retry', 'warm']);
    let shown: any[] = [];
    for (let i = 0; i < 50 && !shown.some((b) => b.name === 'burst'); i++) {
      shown = (await getJson(`${gateways[0].url}/dashboard/data`)).json.history.at(-1)?.tokenBudgets ?? [];
      if (!shown.length) await sleep(100);
    }
    assert.deepEqual(shown.find((b) => b.name === 'burst')?.limit, BURST_TPM, 'the dashboard shows the budgets');
  });
});
