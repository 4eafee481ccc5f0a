import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { embeddedRedisPid, GatewayProcess, nonJsonLines, processGone, runToExit, startGateway } from './support/gateway-process';
import { chatBody, parseSse, send, words } from './support/http';
import { waitFor } from './support/wait';

/** Lines of one JSON log, by message. */
type LogLine = Record<string, unknown>;

describe('WORKERS=2: one port, two gateway workers under a node:cluster primary', () => {
  let dir: string;
  let gateway: GatewayProcess;
  let redisPid: number | undefined;
  /** Every worker pid seen so far, to check that all of them are gone at the end. */
  const workerPids = new Set<number>();

  const primaryPid = () => gateway.child.pid!;
  const linesOf = (msg: string, pid?: number) => gateway.logLines().filter((l: LogLine) => l.msg === msg && (pid === undefined || l.pid === pid));
  /** Pids of the workers that wrote a "Bulwark listening" line. */
  const listeningWorkers = () => linesOf('Bulwark listening').filter((l) => l.context === 'Worker').map((l) => Number(l.pid));
  /** Pids of the processes that logged a completed chat completion (pino-http's line carries the pid). */
  const servingPids = () => new Set(linesOf('request completed').filter((l) => (l.req as { url?: string })?.url === '/v1/chat/completions').map((l) => Number(l.pid)));
  /** One chat completion on a connection of its own (the primary hands each new connection to the next worker). */
  const onNewConnection = () =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const body = JSON.stringify(chatBody({ x_sim: { chunks: 2 } }));
      const req = httpRequest(`${gateway.url}/v1/chat/completions`, { method: 'POST', agent: false, timeout: 10_000, headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 10 s'))).on('error', reject).end(body);
    });
  /** Four requests, each on a new connection. */
  const burst = async () => {
    const answers = await Promise.all(Array.from({ length: 4 }, onNewConnection));
    for (const answer of answers) assert.equal(answer.status, 200, answer.text);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-workers-'));
    // No REDIS_URL and no upstream: the primary starts the embedded redis-server and the simulator once.
    gateway = await startGateway({ env: { WORKERS: '2', DATA_DIR: dir, SHUTDOWN_GRACE_MS: '20000', RETRY_MAX_ATTEMPTS: '1' }, startTimeoutMs: 40_000 });
    await waitFor('the primary to report both workers listening', () => linesOf('Bulwark listening', primaryPid()).length === 1, 30_000, 50);
    redisPid = embeddedRedisPid(gateway.output());
    for (const pid of linesOf('Bulwark listening', primaryPid())[0].workers as number[]) workerPids.add(pid);
  });

  after(async () => {
    if (gateway?.child.exitCode === null) await gateway.stop('SIGKILL');
    for (const pid of [...workerPids, redisPid]) if (pid && !processGone(pid)) process.kill(pid, 'SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('starts one embedded redis-server and one simulated upstream, which every worker uses', () => {
    const primary = linesOf('Bulwark listening', primaryPid())[0];
    assert.deepEqual([...(primary.workers as number[])].sort(), [...workerPids].sort());
    assert.equal(workerPids.size, 2);
    assert.ok(!workerPids.has(primaryPid()));
    assert.ok(redisPid && !processGone(redisPid), 'no embedded redis-server running');
    const redisStarts = gateway.logLines().filter((l) => /embedded redis-server started/.test(String(l.msg)));
    assert.deepEqual(redisStarts.map((l) => l.pid), [primaryPid()]);
    const simulators = gateway.logLines().filter((l) => /built-in simulated upstream/.test(String(l.msg)));
    assert.deepEqual(simulators.map((l) => l.pid), [primaryPid()]);
    const settings = linesOf('effective settings').map((l) => l.settings as { upstreams: { url: string }[]; redis: { url: string } });
    assert.equal(settings.length, 2);
    assert.equal(settings[0].upstreams[0].url, simulators[0].upstream);
    assert.equal(settings[1].upstreams[0].url, simulators[0].upstream);
    assert.equal(settings[0].redis.url, `redis://127.0.0.1:${redisStarts[0].port}`);
    assert.equal(settings[1].redis.url, settings[0].redis.url);
    assert.deepEqual(gateway.nonJsonLines(), []);
  });

  it('serves requests on its one port from both workers', async () => {
    await waitFor('both workers to answer requests', async () => {
      await burst();
      return [...workerPids].every((pid) => servingPids().has(pid));
    }, 30_000, 10);
    assert.ok(!servingPids().has(primaryPid()), 'the primary served a request itself');
  });

  it('starts a new worker in place of one killed with kill -9, and keeps serving meanwhile', async () => {
    const [victim, survivor] = [...workerPids];
    process.kill(victim, 'SIGKILL');
    await waitFor('the primary to notice the dead worker', () => linesOf('a worker exited: starting another in its place', primaryPid()).some((l) => l.workerPid === victim), 20_000, 50);
    await burst();
    const replacement = await waitFor('a new worker to listen', () => listeningWorkers().find((pid) => !workerPids.has(pid)), 30_000, 50);
    workerPids.add(replacement);
    await waitFor('the new worker to answer requests', async () => {
      await burst();
      return servingPids().has(replacement);
    }, 30_000, 10);
    assert.ok(processGone(victim));
    assert.ok(!processGone(survivor));
  });

  it('on SIGTERM (sent twice, counted once) lets a stream in flight finish, then every worker, the redis-server and the primary exit 0', async () => {
    const live = [...workerPids].filter((pid) => !processGone(pid));
    assert.equal(live.length, 2);
    // 150 chunks 10 ms apart: a stream of about 1.5 s.
    const response = await send(`${gateway.url}/v1/chat/completions`, { method: 'POST', body: chatBody({ stream: true, x_sim: { chunks: 150 } }), timeoutMs: 30_000 });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value, { stream: true });
    assert.match(text, /^data: /);

    gateway.child.kill('SIGTERM');
    gateway.child.kill('SIGTERM');
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const events = parseSse(text);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), words(150));

    assert.equal(await gateway.exited, 0, gateway.output().slice(-3000));
    for (const pid of live) assert.ok(processGone(pid), `worker ${pid} still runs`);
    await waitFor('the embedded redis-server to exit', () => processGone(redisPid!), 10_000, 50);
    assert.equal(linesOf('shutting down: every worker drains its in-flight work', primaryPid()).length, 1);
    assert.equal(linesOf('second signal: stopping every worker now').length, 0);
    assert.deepEqual(linesOf('worker stopped', primaryPid()).map((l) => l.code), [0, 0]);
    assert.deepEqual(gateway.nonJsonLines(), []);
  });
});

describe('WORKERS: a start that fails', () => {
  it('refuses a bad WORKERS before starting anything, naming the variable', async () => {
    const run = await runToExit({ WORKERS: 'many', UPSTREAM_URL: 'http://127.0.0.1:9/v1' });
    assert.equal(run.code, 78);
    assert.match(run.stdout, /WORKERS=\\"many\\": must be a whole number of processes from 1 to 1024, or auto/);
    assert.doesNotMatch(run.stdout, /redis-server started|Bulwark listening/);
  });

  it('exits with the failing worker\'s code and line when the port is taken, stopping the other worker and the redis-server', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-workers-taken-'));
    try {
      const run = await runToExit({ WORKERS: '2', PORT: String(port), DATA_DIR: dir, UPSTREAM_URL: 'http://127.0.0.1:9/v1' }, 60_000);
      assert.equal(run.code, 1, run.stdout);
      assert.match(run.stdout, new RegExp(`PORT=${port} on HOST=127.0.0.1 is already in use`));
      assert.match(run.stdout, /a worker failed to start: stopping/);
      const redisPid = embeddedRedisPid(run.stdout);
      assert.ok(redisPid, 'the primary started no redis-server');
      await waitFor('the embedded redis-server to exit', () => processGone(redisPid), 10_000, 50);
      assert.deepEqual(nonJsonLines(run.stdout + run.stderr), []);
    } finally {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
