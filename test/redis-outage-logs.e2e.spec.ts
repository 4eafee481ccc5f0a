import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GatewayProcess, startGateway } from './support/gateway-process';
import { chatBody, postJson } from './support/http';
import { TestRedis } from './support/redis-server';
import { GatewayStack, startStack } from './support/stack';
import { waitFor } from './support/wait';

describe('logs through a Redis outage', () => {
  let stack: GatewayStack;
  let redis: TestRedis;
  let gateway: GatewayProcess;

  before(async () => {
    ({ redis, gateway } = stack = await startStack({ simulator: { latencyMs: 5 }, env: { QUEUE_LOCK_MS: '2000' } }));
  });

  after(() => stack?.stop('SIGKILL'));

  it('writes JSON only, one line when Redis is lost and one when it is back, and serves again', async () => {
    assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, chatBody())).status, 200);
    await redis.down();
    // Traffic and reconnect attempts during a few seconds of outage.
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), {}, 5000);
      assert.ok([200, 503].includes(res.status), res.text);
      await new Promise((r) => setTimeout(r, 200));
    }
    await redis.up();
    await waitFor('service to return', async () => (await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), {}, 5000)).status === 200, 20_000, 200);
    await waitFor('the back line', () => gateway.logLines().some((l) => l.event === 'redis_connection_back'), 5000);

    assert.deepEqual(gateway.nonJsonLines(), [], 'every line is JSON');
    const events = gateway.logLines().map((l) => l.event).filter((e) => typeof e === 'string' && e.startsWith('redis_connection'));
    assert.deepEqual(events, ['redis_connection_lost', 'redis_connection_back']);
    assert.doesNotMatch(gateway.output(), /ECONNREFUSED[^\n]*\n\s+at /, 'no stack traces');
  });
});

describe('logs of the embedded redis-server', () => {
  let gateway: GatewayProcess | undefined;
  let dataDir: string;

  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'bulwark-embedded-logs-'));
  });

  after(async () => {
    await gateway?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("wraps the child's output in JSON lines, from start to stop", async () => {
    gateway = await startGateway({ env: { DATA_DIR: dataDir, LOG_LEVEL: 'debug' } });
    assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, chatBody())).status, 200);
    assert.equal(await gateway.stop('SIGTERM'), 0);
    assert.deepEqual(gateway.nonJsonLines(), []);
    const fromChild = gateway.logLines().filter((l) => l.source === 'redis-server');
    assert.ok(fromChild.some((l) => String(l.msg).includes('Ready to accept connections')), 'the child is heard, as JSON');
  });
});
