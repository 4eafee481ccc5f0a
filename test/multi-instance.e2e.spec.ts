import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { chatBody, getJson, postJson, postSse, words } from './support/http';
import { Stack, startStack } from './support/stack';
import { waitFor } from './support/wait';

describe('several instances on one Redis', () => {
  let stack: Stack;
  let simulator: UpstreamSimulator;

  before(async () => {
    ({ simulator } = stack = await startStack({ env: { QUEUE_LOCK_MS: '2000', RETRY_MAX_ATTEMPTS: '1' }, gateway: false }));
  });

  after(() => stack?.stop('SIGKILL'));

  afterEach(() => stack?.stopGateways());

  it('relays a stream whose job runs on another instance, chunk by chunk', async () => {
    const front = await stack.startGateway({ WORKER_ENABLED: 'false' });
    const worker = await stack.startGateway();
    simulator.resetStats();
    const { status, headers, events } = await postSse(`${front.url}/v1/chat/completions`, chatBody({ stream: true, x_sim: { chunks: 12 } }));
    assert.equal(status, 200);
    assert.equal(headers.get('x-upstream'), 'primary');
    assert.equal(events.at(-1), '[DONE]');
    const text = events
      .slice(0, -1)
      .map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '')
      .join('');
    assert.equal(text, words(12));
    // The front door runs no worker (WORKER_ENABLED=false): the job ran on the other instance.
    assert.match(front.output(), /WORKER_ENABLED=false/);
    assert.equal(simulator.stats.requestsByPath['/v1/chat/completions'], 1);
    const plain = await postJson(`${front.url}/v1/chat/completions`, chatBody());
    assert.equal(plain.status, 200);
    assert.equal(plain.json.object, 'chat.completion');
    await front.stop('SIGKILL');
    await worker.stop('SIGKILL');
  });

  it('keeps MAX_CONCURRENT_REQUESTS across instances (global concurrency)', async () => {
    const a = await stack.startGateway({ MAX_CONCURRENT_REQUESTS: '2' });
    const b = await stack.startGateway({ MAX_CONCURRENT_REQUESTS: '2' });
    // The gateways' own upstream probes (GET /v1/models) may still be on their way from their start.
    await waitFor('the startup probes to end', () => simulator.stats.inFlight === 0);
    simulator.resetStats();
    const requests = Array.from({ length: 12 }, (_, i) => postJson(`${(i % 2 ? a : b).url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 60 } })));
    const results = await Promise.all(requests);
    assert.deepEqual(results.map((r) => r.status), Array(12).fill(200));
    assert.ok(simulator.stats.maxInFlight <= 2, `max in flight ${simulator.stats.maxInFlight}`);
    assert.equal(simulator.stats.completed - (simulator.stats.requestsByPath['/v1/models'] ?? 0), 12);
    await a.stop('SIGKILL');
    await b.stop('SIGKILL');
  });

  it('finishes a job whose worker process was killed mid-call on another instance', async () => {
    const first = await stack.startGateway();
    simulator.resetStats();
    const created = await postJson(`${first.url}/v1/jobs`, chatBody({ x_sim: { latencyMs: 2500 } }));
    assert.equal(created.status, 202);
    await waitFor('the upstream call to start', () => simulator.stats.running === 1);
    await first.stop('SIGKILL');
    const second = await stack.startGateway();
    const done = await waitFor(
      'the job to complete on the second instance',
      async () => {
        const res = await getJson(`${second.url}/v1/jobs/${created.json.id}`);
        return res.json.status === 'completed' ? res.json : undefined;
      },
      20_000,
      200,
    );
    assert.equal(done.result.object, 'chat.completion');
    // The stalled job was recovered and its upstream call repeated once.
    assert.equal(simulator.stats.requestsByPath['/v1/chat/completions'], 2);
    await second.stop('SIGKILL');
  });
});
