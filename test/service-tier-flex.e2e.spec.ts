import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { getJson, postJson } from './support/http';
import { GatewayStack, startStack, TempFile, writeUpstreamsFile } from './support/stack';

const KEY = 'sk-flex-one-22bb';
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const chat = (extra: Record<string, unknown> = {}) => ({ model: 'sim-small', messages: [{ role: 'user', content: 'abc' }], max_tokens: 5, ...extra });

describe('service_tier flex: no capacity is 429 resource_unavailable, as OpenAI answers flex', () => {
  let stack: GatewayStack;
  let file: TempFile;

  before(async () => {
    file = writeUpstreamsFile({ keys: [{ name: 'one', keyEnv: 'ONE_KEY', tier: 'high' }] });
    stack = await startStack({
      simulator: { latencyMs: 5, chunkIntervalMs: 1 },
      env: { API_KEYS_FILE: file.path, ONE_KEY: KEY, MAX_CONCURRENT_REQUESTS: '1', MAX_QUEUE_SIZE: '5', QUEUE_REJECTION_THRESHOLD: '0' },
    });
  });

  after(async () => {
    await stack?.stop();
    file?.remove();
  });

  it('sheds a flex request under contention with 429 resource_unavailable and Retry-After', async () => {
    const url = `${stack.url}/v1/chat/completions`;
    const hold = new AbortController();
    // One running and four waiting (high: never shed before the queue is full), for seconds: the queue is 80 % full.
    const fillers = Array.from({ length: 5 }, () =>
      fetch(url, {
        method: 'POST',
        headers: { ...bearer(KEY), 'content-type': 'application/json', 'x-request-timeout-ms': '20000', 'x-priority': 'high' },
        body: JSON.stringify({ model: 'sim-small', messages: [{ role: 'user', content: 'hold' }], x_sim: { latencyMs: 15_000 } }),
        signal: hold.signal,
      }).catch(() => undefined),
    );
    try {
      let stats: any = {};
      for (let i = 0; i < 100 && !(stats.waiting >= 4 && stats.active >= 1); i++) {
        await sleep(50);
        stats = (await getJson(`${stack.url}/v1/queue/stats`, bearer(KEY))).json;
      }
      assert.ok(stats.waiting >= 4, JSON.stringify(stats));
      let shed;
      const seen: string[] = [];
      for (let i = 0; i < 30 && !shed; i++) {
        const res = await postJson(url, chat({ service_tier: 'flex' }), { ...bearer(KEY), 'x-request-timeout-ms': '300' });
        seen.push(`${res.status} ${res.json?.error?.code ?? ''}`);
        if (res.json?.error?.code === 'resource_unavailable') shed = res;
        // Only the door, which answers before the body is read, may still say 503 (a flex request it cannot tell).
        else if (res.status === 503) assert.match(res.text, /queue_full|load_shed/);
        if (!shed) await sleep(50);
      }
      assert.ok(shed, `no flex refusal among ${seen.join(', ')}`);
      assert.equal(shed.status, 429);
      assert.equal(shed.json.error.type, 'rate_limit_error');
      assert.ok(Number(shed.headers.get('retry-after')) >= 1);
      assert.equal(shed.headers.get('x-should-retry'), 'true');
    } finally {
      hold.abort();
      await Promise.all(fillers);
    }
  });
});
