import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startGateway } from './support/gateway-process';
import { chatBody, getJson, postJson } from './support/http';
import { TestRedis } from './support/redis-server';
import { Stack, startStack } from './support/stack';

const MAIN = resolve(__dirname, '../src/main.js');

/** Runs the gateway with `env` until it exits by itself (a start that must fail); kills it after `timeoutMs`. */
function runToExit(env: Record<string, string>, timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PORT: '0', HOST: '127.0.0.1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
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
      const lines = run.stderr.trim().split('\n');
      assert.equal(lines.length, 1, run.stderr);
      assert.match(lines[0], /MAX_QUEUE_SIZE=-3/);
      assert.match(lines[0], /less than 1/);
      assert.doesNotMatch(run.stdout, /Bulwark listening/);
    });

    it('names a bad API_KEYS without echoing its value', async () => {
      const run = await runToExit({ REDIS_URL: redis.url, UPSTREAM_URL: upstreamUrl, API_KEYS: 'sk-live-0123456789' });
      assert.equal(run.code, 78);
      assert.match(run.stderr, /API_KEYS/);
      assert.doesNotMatch(run.stderr + run.stdout, /sk-live-0123456789/);
    });

    it('refuses UPSTREAM_URL and UPSTREAMS_FILE together', async () => {
      const file = join(dir, 'upstreams.yaml');
      writeFileSync(file, `upstreams:\n  - name: a\n    url: ${upstreamUrl}\n    models: [sim-small]\n`);
      const run = await runToExit({ REDIS_URL: redis.url, UPSTREAM_URL: upstreamUrl, UPSTREAMS_FILE: file });
      assert.equal(run.code, 78);
      assert.match(run.stderr, /UPSTREAM_URL and UPSTREAMS_FILE are both set/);
    });

    it('refuses BREAKER_MIN_CALLS above BREAKER_WINDOW_SIZE at start, not at the first request', async () => {
      const run = await runToExit({ REDIS_URL: redis.url, UPSTREAM_URL: upstreamUrl, BREAKER_WINDOW_SIZE: '10', BREAKER_MIN_CALLS: '20' });
      assert.equal(run.code, 78);
      assert.match(run.stderr, /BREAKER_MIN_CALLS=20: must be at most BREAKER_WINDOW_SIZE \(10\)/);
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
      const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody());
      assert.equal(res.status, 200, res.text);
      assert.equal((await getJson(`${gateway.url}/health/ready`)).status, 200);
      redisPid = Number(readFileSync(join(dataDir, 'redis.pid'), 'utf8').trim());
      assert.ok(redisPid > 0 && processAlive(redisPid), `redis-server pid ${redisPid} is not running`);
    } finally {
      assert.equal(await gateway.stop('SIGTERM'), 0, gateway.output());
    }
    assert.equal(processAlive(redisPid), false, `redis-server ${redisPid} outlived the gateway`);
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
});
