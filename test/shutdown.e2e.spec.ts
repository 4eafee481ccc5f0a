import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { embeddedRedisPid, GatewayProcess, processGone, startGateway } from './support/gateway-process';
import { chatBody, expectErrorShape, getJson, parseSse, postJson, send, words } from './support/http';
import { Stack, startStack } from './support/stack';
import { waitFor } from './support/wait';

const OUTER_TIMEOUT_MS = 30_000;

describe('graceful shutdown', () => {
  let stack: Stack;
  let simulator: UpstreamSimulator;

  before(async () => {
    ({ simulator } = stack = await startStack({
      // 20 chunks 100 ms apart: a stream that lasts about two seconds.
      simulator: { latencyMs: 5, chunkIntervalMs: 100 },
      env: { REQUEST_TIMEOUT_MS: '30000', RETRY_MAX_ATTEMPTS: '1' },
      gateway: false,
    }));
  });

  after(() => stack?.stop('SIGKILL'));

  it('lets a stream in flight finish, refuses new work with 503 shutting_down, fails readiness, then exits 0', async () => {
    const gateway = await stack.startGateway({ SHUTDOWN_GRACE_MS: '10000', STREAM_IDLE_TIMEOUT_MS: '5000' });
    const ready = await getJson(`${gateway.url}/health/ready`);
    assert.equal(ready.status, 200, ready.text);

    const response = await send(`${gateway.url}/v1/chat/completions`, { method: 'POST', body: chatBody({ stream: true, x_sim: { chunks: 20 } }), timeoutMs: OUTER_TIMEOUT_MS });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const first = await reader.read();
    text += decoder.decode(first.value, { stream: true });
    assert.match(text, /^data: /);

    gateway.child.kill('SIGTERM');

    // Readiness fails while draining, so a load balancer stops sending traffic.
    let draining: Awaited<ReturnType<typeof getJson>> | undefined;
    await waitFor(
      '/health/ready to answer 503',
      async () => {
        draining = await getJson(`${gateway.url}/health/ready`);
        return draining.status === 503;
      },
      10_000,
      50,
    );
    assert.match(draining!.text, /draining/);

    // New work is refused, with the headers that send a client elsewhere.
    const refused = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), {}, OUTER_TIMEOUT_MS);
    assert.equal(refused.status, 503, refused.text);
    const error = expectErrorShape(refused.json);
    assert.equal(error.type, 'overloaded_error');
    assert.equal(error.code, 'shutting_down');
    assert.match(refused.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    assert.equal(refused.headers.get('x-should-retry'), 'true');

    // Liveness holds: the process still serves.
    assert.equal((await getJson(`${gateway.url}/health/live`)).status, 200);

    // The stream in flight runs to its end.
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const events = parseSse(text);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.ok(chunks.every((c) => !('error' in c)), 'the stream carries an error event');
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), words(20));

    assert.equal(await gateway.exited, 0);
  });

  it('exits 0 at once when idle, and stops listening', async () => {
    const gateway = await stack.startGateway({ SHUTDOWN_GRACE_MS: '10000' });
    assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { chunks: 1 } }))).status, 200);
    assert.equal(await gateway.stop('SIGTERM'), 0);
    await assert.rejects(fetch(`${gateway.url}/health/live`, { signal: AbortSignal.timeout(5000) }));
  });

  it('answers a request still in flight when the grace period ends, then exits 0', async () => {
    const gateway = await stack.startGateway({ SHUTDOWN_GRACE_MS: '1000' });
    const calls = () => simulator.stats.requestsByPath['/v1/chat/completions'] ?? 0;
    const before = calls();
    const pending = postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { fault: 'hang' } }), {}, OUTER_TIMEOUT_MS);
    await waitFor('the upstream to hold the request', () => calls() > before, 10_000, 50);
    gateway.child.kill('SIGTERM');
    const res = await pending;
    assert.ok(res.status >= 500, `status ${res.status}`);
    expectErrorShape(res.json);
    assert.equal(await gateway.exited, 0);
  });

  it(
    'exits 0 on SIGTERM while a client holds a connection open without sending a request',
    async () => {
      const gateway = await stack.startGateway({ SHUTDOWN_GRACE_MS: '10000' });
      // What a browser's preconnect or a pooled client does: connect, then stay silent.
      const socket = connect(gateway.port, '127.0.0.1');
      await new Promise<void>((resolveConnect, reject) => socket.once('connect', resolveConnect).once('error', reject));
      try {
        assert.equal(await gateway.stop('SIGTERM'), 0);
        assert.doesNotMatch(gateway.output(), /did not finish/);
      } finally {
        socket.destroy();
      }
    },
  );

  describe('stop signals, with the embedded redis-server (REDIS_URL unset)', () => {
    let dir: string;
    const started: { gateway: GatewayProcess; redisPid?: number }[] = [];

    /** A gateway with its own embedded Redis under a fresh DATA_DIR, and that redis-server's pid. */
    const startEmbedded = async (env: Record<string, string>, detached = false) => {
      const gateway = await startGateway({
        env: { UPSTREAM_URL: stack.upstreamUrl, DATA_DIR: mkdtempSync(join(dir, 'data-')), RETRY_MAX_ATTEMPTS: '1', ...env },
        detached,
      });
      const redisPid = embeddedRedisPid(gateway.output());
      started.push({ gateway, redisPid });
      assert.ok(redisPid && !processGone(redisPid), `no running embedded redis-server: ${gateway.output()}`);
      return { gateway, redisPid };
    };
    const drainLines = (gateway: GatewayProcess) => gateway.logLines().filter((l) => l.msg === 'shutting down: draining in-flight work');

    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'bulwark-signals-'));
    });

    after(async () => {
      // A failed test may leave a gateway, or (if the gateway died hard) its redis-server, behind.
      for (const { gateway, redisPid } of started) {
        await gateway.stop('SIGKILL');
        if (redisPid && !processGone(redisPid)) process.kill(redisPid, 'SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    });

    it('counts a process-group signal and its forwarded copy 5 ms later as one: drains the stream in flight, exits 0, stops redis-server', async () => {
      const { gateway, redisPid } = await startEmbedded({ SHUTDOWN_GRACE_MS: '10000', STREAM_IDLE_TIMEOUT_MS: '5000' }, true);
      const response = await send(`${gateway.url}/v1/chat/completions`, { method: 'POST', body: chatBody({ stream: true, x_sim: { chunks: 20 } }), timeoutMs: OUTER_TIMEOUT_MS });
      assert.equal(response.status, 200);
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      let text = decoder.decode((await reader.read()).value, { stream: true });

      // What `timeout`, a process manager or Ctrl-C on `npm start | tee` do (the whole group), then npm's forwarding.
      process.kill(-gateway.child.pid!, 'SIGTERM');
      await new Promise((r) => setTimeout(r, 5));
      gateway.child.kill('SIGTERM');

      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      const events = parseSse(text);
      assert.equal(events.at(-1), '[DONE]');
      assert.equal(events.slice(0, -1).map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '').join(''), words(20));
      assert.equal(await gateway.exited, 0, gateway.output());
      assert.equal(drainLines(gateway).length, 1, gateway.output());
      assert.doesNotMatch(gateway.output(), /second signal/);
      await waitFor(`embedded redis-server ${redisPid} to be gone`, () => processGone(redisPid), 5000);
    });

    it('exits at once on a real second signal, and still stops its redis-server', async () => {
      const { gateway, redisPid } = await startEmbedded({ SHUTDOWN_GRACE_MS: '30000' });
      const calls = () => simulator.stats.requestsByPath['/v1/chat/completions'] ?? 0;
      const before = calls();
      // A request the upstream holds, so the drain would wait for the whole grace period.
      const pending = postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim: { fault: 'hang' } }), {}, OUTER_TIMEOUT_MS).catch((error: Error) => error);
      await waitFor('the upstream to hold the request', () => calls() > before, 10_000, 50);
      gateway.child.kill('SIGTERM');
      await waitFor('the drain to start', () => drainLines(gateway).length === 1, 10_000, 50);
      // Past the window in which a repeat counts as the same request.
      await new Promise((r) => setTimeout(r, 1200));
      gateway.child.kill('SIGTERM');
      assert.equal(await gateway.exited, 1, gateway.output());
      assert.match(gateway.output(), /second signal: exiting now/);
      assert.ok(processGone(redisPid), `embedded redis-server ${redisPid} outlived the forced exit`);
      await pending;
    });

    it('a gateway killed with SIGKILL does not leave its redis-server behind for long (the watchdog stops it)', async () => {
      const { gateway, redisPid } = await startEmbedded({});
      assert.equal(await gateway.stop('SIGKILL'), null);
      await waitFor(`embedded redis-server ${redisPid} to be stopped by its watchdog`, () => processGone(redisPid), 10_000, 100);
    });
  });
});
