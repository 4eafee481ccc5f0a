import assert from 'node:assert/strict';
import { createServer, Server } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { embeddedRedisPid, nonJsonLines, parseLogLines, processGone, runToExit, startGateway } from './support/gateway-process';
import { chatBody, getJson, postJson } from './support/http';
import { TestRedis } from './support/redis-server';
import { Stack, startStack } from './support/stack';
import { waitFor } from './support/wait';

/** A port on 127.0.0.1 that nothing listens on (free when asked; nothing here binds it). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  const { port } = server.address() as { port: number };
  await new Promise<void>((closed) => server.close(() => closed()));
  return port;
}

describe('start-up', () => {
  let stack: Stack;
  let redis: TestRedis;
  let upstreamUrl: string;
  let dir: string;

  before(async () => {
    ({ redis, upstreamUrl } = stack = await startStack({ gateway: false }));
    dir = mkdtempSync(join(tmpdir(), 'bulwark-startup-'));
  });

  after(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('a bad configuration stops the start with a non-zero exit and a message', () => {
    it('names MAX_QUEUE_SIZE=-3 and its bound in one line', async () => {
      const run = await runToExit({ REDIS_URL: redis.url, UPSTREAM_URL: upstreamUrl, MAX_QUEUE_SIZE: '-3' });
      assert.notEqual(run.code, 0);
      assert.equal(run.code, 78);
      // One JSON line, nothing else.
      const lines = (run.stdout + run.stderr).trim().split('\n');
      assert.equal(lines.length, 1, run.stdout + run.stderr);
      assert.deepEqual(nonJsonLines(run.stdout + run.stderr), []);
      assert.match(lines[0], /MAX_QUEUE_SIZE=-3/);
      assert.match(lines[0], /less than 1/);
      assert.doesNotMatch(run.stdout, /Bulwark listening/);
    });

    it('names a bad API_KEYS without echoing its value', async () => {
      const run = await runToExit({ REDIS_URL: redis.url, UPSTREAM_URL: upstreamUrl, API_KEYS: 'sk-live-0123456789' });
      assert.equal(run.code, 78);
      assert.match(run.stdout, /API_KEYS/);
      assert.doesNotMatch(run.stderr + run.stdout, /sk-live-0123456789/);
    });

    it('refuses UPSTREAM_URL and UPSTREAMS_FILE together', async () => {
      const file = join(dir, 'upstreams.yaml');
      writeFileSync(file, `upstreams:\n  - name: a\n    url: ${upstreamUrl}\n    models: [sim-small]\n`);
      const run = await runToExit({ REDIS_URL: redis.url, UPSTREAM_URL: upstreamUrl, UPSTREAMS_FILE: file });
      assert.equal(run.code, 78);
      assert.match(run.stdout, /UPSTREAM_URL and UPSTREAMS_FILE are both set/);
    });

    it('refuses BREAKER_MIN_CALLS above BREAKER_WINDOW_SIZE at start, not at the first request', async () => {
      const run = await runToExit({ REDIS_URL: redis.url, UPSTREAM_URL: upstreamUrl, BREAKER_WINDOW_SIZE: '10', BREAKER_MIN_CALLS: '20' });
      assert.equal(run.code, 78);
      assert.match(run.stdout, /BREAKER_MIN_CALLS=20: must be at most BREAKER_WINDOW_SIZE \(10\)/);
    });

    it('refuses an UPSTREAMS_FILE that is not a mapping with a message, not a crash', async () => {
      const file = join(dir, 'scalar.yaml');
      writeFileSync(file, 'just some words\n');
      const run = await runToExit({ REDIS_URL: redis.url, UPSTREAMS_FILE: file });
      assert.equal(run.code, 78);
      const output = run.stdout + run.stderr;
      assert.match(output, /UPSTREAMS_FILE=.*must hold a mapping/);
      assert.doesNotMatch(output, /TypeError|\n\s+at /);
    });

    it('refuses an UPSTREAMS_FILE whose apiKeyEnv is unset', async () => {
      const file = join(dir, 'keyed.json');
      writeFileSync(file, JSON.stringify({ upstreams: [{ name: 'a', url: upstreamUrl, apiKeyEnv: 'BULWARK_TEST_MISSING_KEY', models: ['sim-small'] }] }));
      const run = await runToExit({ REDIS_URL: redis.url, UPSTREAMS_FILE: file });
      assert.equal(run.code, 78);
      assert.match(run.stdout + run.stderr, /BULWARK_TEST_MISSING_KEY is not set/);
    });
  });

  it('without REDIS_URL runs a private redis-server under DATA_DIR, persists to it, and stops it on SIGTERM', async () => {
    const dataDir = join(dir, 'data');
    const gateway = await startGateway({ env: { UPSTREAM_URL: upstreamUrl, DATA_DIR: dataDir, RETRY_MAX_ATTEMPTS: '1' } });
    let redisPid = 0;
    try {
      assert.ok(gateway.logLines().some((l) => /embedded redis-server started/.test(String(l.msg))), gateway.output());
      // One line with the effective settings, naming the UPSTREAM_URL upstream; Nest's module and route lines stay at debug.
      const settings = gateway.logLines().filter((l) => l.msg === 'effective settings');
      assert.equal(settings.length, 1, gateway.output());
      assert.deepEqual(settings[0].settings, {
        upstreamSource: 'UPSTREAM_URL',
        upstreams: [{ name: 'primary', url: upstreamUrl, models: '*', weight: 1, apiKey: 'unset' }],
        fallbacks: {},
        queue: { maxQueueSize: 50, maxConcurrent: 3, rejectionThreshold: 0.8, workerEnabled: true },
        deadlines: { requestTimeoutMs: 60000, streamIdleTimeoutMs: 30000, jobTimeoutMs: 600000, shutdownGraceMs: 30000 },
        retries: { maxAttempts: 1, budgetRatio: 0.2 },
        auth: { clientKeys: 'off', adminKey: 'unset', rateLimitRpm: 0, metrics: 'none', healthDetails: 'none' },
        redis: { mode: 'embedded', url: `redis://127.0.0.1:${gateway.logLines().find((l) => l.redisPid)?.port}`, dataDir },
      });
      assert.equal(gateway.logLines().filter((l) => /^(InstanceLoader|RoutesResolver|RouterExplorer|NestFactory|NestApplication)$/.test(String(l.context))).length, 0);
      const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody());
      assert.equal(res.status, 200, res.text);
      assert.equal((await getJson(`${gateway.url}/health/ready`)).status, 200);
      redisPid = Number(readFileSync(join(dataDir, 'redis.pid'), 'utf8').trim());
      assert.ok(redisPid > 0 && !processGone(redisPid), `redis-server pid ${redisPid} is not running`);
    } finally {
      assert.equal(await gateway.stop('SIGTERM'), 0, gateway.output());
    }
    assert.ok(processGone(redisPid), `redis-server ${redisPid} outlived the gateway`);
    // Append-only persistence under DATA_DIR, holding the queue's keys.
    const aofDir = join(dataDir, 'appendonlydir');
    const aofFiles = existsSync(aofDir) ? readdirSync(aofDir).map((f) => join(aofDir, f)) : [join(dataDir, 'appendonly.aof')];
    assert.ok(aofFiles.some((f) => existsSync(f) && statSync(f).size > 0), `no append-only file in ${dataDir}: ${readdirSync(dataDir).join(', ')}`);
    assert.ok(aofFiles.some((f) => existsSync(f) && readFileSync(f).includes('inference')), 'the queue left nothing in the append-only file');

    // A clean stop leaves nothing that blocks the next start on the same DATA_DIR.
    const again = await startGateway({ env: { UPSTREAM_URL: upstreamUrl, DATA_DIR: dataDir, RETRY_MAX_ATTEMPTS: '1' } });
    try {
      assert.equal((await postJson(`${again.url}/v1/chat/completions`, chatBody())).status, 200);
    } finally {
      assert.equal(await again.stop('SIGTERM'), 0, again.output());
    }
  });

  it('without any upstream configured serves from the built-in simulator, and says so', async () => {
    const gateway = await startGateway({ env: { REDIS_URL: redis.url } });
    try {
      assert.ok(gateway.logLines().some((l) => /built-in simulated upstream/.test(String(l.msg))), gateway.output());
      const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody());
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers.get('x-upstream'), 'simulator');
      const models = await getJson(`${gateway.url}/v1/models`);
      assert.deepEqual(models.json.data.map((m: { id: string }) => m.id).sort(), ['sim-large', 'sim-small']);
    } finally {
      assert.equal(await gateway.stop('SIGTERM'), 0, gateway.output());
    }
  });

  describe('a start that cannot succeed exits non-zero, says what to change, and leaves nothing running', () => {
    it('refuses an UPSTREAMS_FILE with a typo, naming the key it meant, before starting anything', async () => {
      const file = join(dir, 'typo.yaml');
      writeFileSync(file, `upstreams:\n  - name: a\n    url: ${upstreamUrl}\n    modles: [sim-small]\n`);
      const dataDir = join(dir, 'typo-data');
      const run = await runToExit({ UPSTREAMS_FILE: file, DATA_DIR: dataDir });
      assert.equal(run.code, 78, run.stdout + run.stderr);
      const output = run.stdout + run.stderr;
      assert.match(output, /unknown key `modles` in upstreams\[0\]; did you mean `models`\?/);
      assert.match(output, /models: \[\\"\*\\"\] to send it any model/);
      assert.deepEqual(nonJsonLines(output), []);
      // The file is checked before the embedded Redis would start: no redis-server, no DATA_DIR.
      assert.equal(existsSync(dataDir), false, 'the embedded Redis was started for a start that could not succeed');
    });

    it('waits for an unreachable REDIS_URL for REDIS_CONNECT_TIMEOUT_MS, one JSON line per attempt, then exits 69 naming REDIS_URL', async () => {
      const port = await closedPort();
      const run = await runToExit({ REDIS_URL: `redis://:topsecret@127.0.0.1:${port}`, REDIS_CONNECT_TIMEOUT_MS: '1500', UPSTREAM_URL: upstreamUrl });
      const output = run.stdout + run.stderr;
      assert.equal(run.code, 69, output);
      assert.deepEqual(nonJsonLines(output), [], 'every line is JSON (no raw ioredis dump)');
      assert.doesNotMatch(output, /topsecret/);
      const lines = parseLogLines(output);
      const attempts = lines.filter((l) => /Redis of REDIS_URL does not answer/.test(String(l.msg)));
      assert.ok(attempts.length >= 2, output);
      assert.deepEqual(attempts.map((l) => l.attempt), attempts.map((_, i) => i + 1));
      assert.ok(attempts.every((l) => l.error === 'ECONNREFUSED' && l.redis === `redis://:***@127.0.0.1:${port}`), output);
      const fatal = lines.filter((l) => l.level === 60);
      assert.equal(fatal.length, 1, output);
      assert.match(String(fatal[0].msg), new RegExp(`^REDIS_URL=redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}: Redis did not answer within 1500 ms \\(${attempts.length + 1} attempts, last: ECONNREFUSED\\).*REDIS_CONNECT_TIMEOUT_MS`));
      assert.doesNotMatch(output, /Bulwark listening/);
    });

    it('stops at once, exit 0, on a signal while it waits for Redis', async () => {
      const port = await closedPort();
      let signalled = false;
      const run = await runToExit({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_CONNECT_TIMEOUT_MS: '60000', UPSTREAM_URL: upstreamUrl }, 20_000, (output, child) => {
        if (!signalled && /does not answer/.test(output)) {
          signalled = true;
          child.kill('SIGTERM');
        }
      });
      assert.equal(signalled, true, run.stdout);
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.match(run.stdout, /signal during start-up/);
    });

    describe('with its port taken', () => {
      let blocker: Server;
      let port: number;

      before(async () => {
        blocker = createServer();
        await new Promise<void>((ready) => blocker.listen(0, '127.0.0.1', ready));
        port = (blocker.address() as { port: number }).port;
      });

      after(() => new Promise<void>((closed) => blocker.close(() => closed())));

      it('exits 1 with one line naming PORT and HOST, after stopping the embedded redis-server it started', async () => {
        const run = await runToExit({ PORT: String(port), HOST: '127.0.0.1', UPSTREAM_URL: upstreamUrl, DATA_DIR: join(dir, 'port-data') });
        const output = run.stdout + run.stderr;
        assert.equal(run.code, 1, output);
        assert.deepEqual(nonJsonLines(output), [], 'every line is JSON (no stack trace)');
        const errors = parseLogLines(output).filter((l) => Number(l.level) >= 50);
        assert.equal(errors.length, 1, output);
        assert.match(String(errors[0].msg), new RegExp(`PORT=${port} on HOST=127\\.0\\.0\\.1 is already in use`));
        assert.equal(errors[0].code, 'EADDRINUSE');
        const redisPid = embeddedRedisPid(output);
        assert.ok(redisPid, `the embedded redis-server did not start: ${output}`);
        await waitFor(`embedded redis-server ${redisPid} to be gone`, () => processGone(redisPid), 5000);
      });
    });
  });
});
