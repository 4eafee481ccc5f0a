import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess, startGateway } from './support/gateway-process';
import { chatBody, getJson, JsonResponse, postJson } from './support/http';
import { SentinelGroup, startSentinelGroup } from './support/sentinel';
import { waitFor } from './support/wait';

/** Each request's own deadline; the client gives up (and fails the test) a little after it. */
const DEADLINE_MS = 2000;
const CLIENT_TIMEOUT_MS = DEADLINE_MS + 3000;

// .ci/run installs redis-sentinel (Debian package `redis-sentinel`); elsewhere the suite says why it did not run.
const SKIP = spawnSync('redis-sentinel', ['--version'], { stdio: 'ignore' }).error ? 'redis-sentinel is not installed' : false;

/**
 * Polls `ask` until it answers 200; on timeout the error carries the last answer and the gateway's
 * Redis lines, so a failure says which connection or check held readiness back.
 */
async function waitForAnswer(what: string, gateway: GatewayProcess, ask: () => Promise<JsonResponse>, timeoutMs = 20_000): Promise<void> {
  let last: JsonResponse | undefined;
  try {
    await waitFor(what, async () => (last = await ask()).status === 200, timeoutMs, 200);
  } catch (error) {
    const redisLines = gateway
      .logLines()
      .filter((l) => typeof l.event === 'string' && l.event.startsWith('redis_connection'))
      .map((l) => JSON.stringify(l));
    throw new Error(`${(error as Error).message}; last answer ${last?.status}: ${last?.text}; Redis lines: ${redisLines.join(' ')}`);
  }
}

describe('Redis high availability through Sentinel', { skip: SKIP }, () => {
  let group: SentinelGroup;
  let simulator: UpstreamSimulator;
  let gateways: GatewayProcess[] = [];

  before(async () => {
    group = await startSentinelGroup({ downAfterMs: 1000, failoverTimeoutMs: 3000 });
    simulator = new UpstreamSimulator({ latencyMs: 5, chunkIntervalMs: 5 });
    const { baseUrl } = await simulator.start();
    const env = {
      REDIS_SENTINELS: group.sentinels,
      REDIS_SENTINEL_NAME: group.name,
      UPSTREAM_URL: baseUrl,
      MAX_CONCURRENT_REQUESTS: '1',
      QUEUE_LOCK_MS: '2000',
    };
    gateways = await Promise.all([startGateway({ env }), startGateway({ env })]);
  });

  after(async () => {
    await Promise.all(gateways.map((g) => g.stop('SIGKILL')));
    await simulator?.stop();
    await group?.stop();
  });

  it('answers every request in time while the primary is killed, then recovers by itself with the accepted jobs', async (t) => {
    const [a, b] = gateways;
    assert.equal((await postJson(`${a.url}/v1/chat/completions`, chatBody())).status, 200);

    // Jobs accepted (202) and replicated before the failover, slow enough that some still wait then.
    const jobs: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await postJson(`${(i % 2 ? b : a).url}/v1/jobs`, chatBody({ x_sim: { latencyMs: 400 } }));
      assert.equal(res.status, 202, res.text);
      jobs.push(res.json.id);
    }
    await group.replicaCaughtUp();

    const answers: JsonResponse[] = [];
    let readyRefused = false;
    let stopTraffic = false;
    const traffic = (async () => {
      for (let i = 0; !stopTraffic; i++) {
        const gateway = gateways[i % 2];
        const [res, live, ready] = await Promise.all([
          postJson(`${gateway.url}/v1/chat/completions`, chatBody(), { 'x-request-timeout-ms': String(DEADLINE_MS) }, CLIENT_TIMEOUT_MS),
          getJson(`${gateway.url}/health/live`, {}, CLIENT_TIMEOUT_MS),
          getJson(`${gateway.url}/health/ready`, {}, CLIENT_TIMEOUT_MS),
        ]);
        answers.push(res);
        assert.equal(live.status, 200, 'liveness holds through the failover');
        if (ready.status === 503) readyRefused = true;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    try {
      group.killPrimary();
      await waitFor('the Sentinels to promote the replica', async () => (await group.currentPrimaryPort()) === group.replicaPort, 30_000, 200);
      for (const gateway of gateways) {
        await waitForAnswer('readiness to return', gateway, () => getJson(`${gateway.url}/health/ready`));
        await waitForAnswer('service to return', gateway, () => postJson(`${gateway.url}/v1/chat/completions`, chatBody()));
      }
    } finally {
      stopTraffic = true;
      await traffic.catch(() => undefined);
    }
    await traffic;

    const counts = answers.reduce<Record<number, number>>((acc, res) => ({ ...acc, [res.status]: (acc[res.status] ?? 0) + 1 }), {});
    t.diagnostic(`answers during the failover by status: ${JSON.stringify(counts)}`);
    assert.ok(readyRefused, '/health/ready said 503 while there was no primary');
    assert.ok(answers.some((res) => res.status === 503), 'the outage was seen by requests');
    for (const res of answers) {
      // A request already queued when the primary died may end with its deadline (it got an answer in time).
      if (res.status === 504) {
        assert.ok(['queue_timeout', 'request_timeout'].includes(res.json?.error?.code), res.text);
        continue;
      }
      assert.ok([200, 503].includes(res.status), `${res.status}: ${res.text}`);
      if (res.status === 503) assert.match(res.headers.get('retry-after') ?? '', /^\d+$/, res.text);
    }
    for (const gateway of gateways) {
      assert.deepEqual(gateway.nonJsonLines(), [], 'every log line is JSON, also during the failover');
      const events = gateway.logLines().map((l) => l.event).filter((e) => typeof e === 'string' && e.startsWith('redis_connection'));
      assert.ok(events.length >= 2 && events.length % 2 === 0, `lost/back pairs: ${events.join(', ')}`);
    }
    for (const id of jobs) {
      const done = await waitFor(
        `job ${id} to complete`,
        async () => {
          const res = await getJson(`${a.url}/v1/jobs/${id}`);
          return res.json?.status === 'completed' ? res.json : undefined;
        },
        30_000,
        200,
      );
      assert.equal(done.result.object, 'chat.completion');
    }
  });
});
