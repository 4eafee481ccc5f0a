import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, expectErrorShape, getJson, postJson, request } from './support/http';
import { GatewayStack, startStack } from './support/stack';
import { waitFor } from './support/wait';

const ALICE = 'sk-alice-0123456789';
const BOB = 'sk-bob-0123456789';
const ADMIN = 'sk-admin-0123456789';
const as = (key: string) => ({ authorization: `Bearer ${key}` });

const deleteJob = (url: string, key: string) => request(url, { method: 'DELETE', headers: as(key) });

describe('jobs API', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;

  before(async () => {
    ({ simulator, gateway } = stack = await startStack({
      simulator: { latencyMs: 5 },
      env: { MAX_CONCURRENT_REQUESTS: '1', RETRY_MAX_ATTEMPTS: '1', API_KEYS: `${ALICE}:high,${BOB}:normal`, ADMIN_API_KEY: ADMIN },
    }));
  });

  after(() => stack?.stop());

  const job = (id: string, key = ALICE) => getJson(`${gateway.url}/v1/jobs/${id}`, as(key));

  it('accepts a job with 202 and Location, then serves its result to its owner only', async () => {
    const created = await postJson(`${gateway.url}/v1/jobs`, chatBody(), as(ALICE));
    assert.equal(created.status, 202);
    assert.equal(created.json.object, 'job');
    assert.ok(['queued', 'active', 'completed'].includes(created.json.status));
    assert.equal(typeof created.json.created_at, 'number');
    assert.ok('position' in created.json);
    assert.equal(created.headers.get('location'), `/v1/jobs/${created.json.id}`);
    const done = await waitFor('the job to complete', async () => {
      const res = await job(created.json.id);
      return res.json.status === 'completed' ? res.json : undefined;
    });
    assert.equal(done.result.object, 'chat.completion');
    assert.match(done.result.choices[0].message.content, /word1/);
    const foreign = await job(created.json.id, BOB);
    assert.equal(foreign.status, 404);
    assert.equal(expectErrorShape(foreign.json).code, 'job_not_found');
  });

  it('turns a chat completion with Prefer: respond-async into a job', async () => {
    const created = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), { ...as(ALICE), prefer: 'respond-async' });
    assert.equal(created.status, 202);
    assert.equal(created.headers.get('location'), `/v1/jobs/${created.json.id}`);
    await waitFor('the job to complete', async () => (await job(created.json.id)).json.status === 'completed');
  });

  it('reports position while queued and cancels a queued job before it reaches the upstream', async () => {
    simulator.resetStats();
    const blocker = await postJson(`${gateway.url}/v1/jobs`, chatBody({ x_sim: { latencyMs: 1500 } }), as(ALICE));
    await waitFor('the blocker to run', () => simulator.stats.running === 1);
    const queued = await postJson(`${gateway.url}/v1/jobs`, chatBody(), as(ALICE));
    const view = await waitFor('the job to be queued', async () => {
      const res = await job(queued.json.id);
      return res.json.status === 'queued' ? res.json : undefined;
    });
    assert.equal(view.position, 1);
    assert.equal((await deleteJob(`${gateway.url}/v1/jobs/${queued.json.id}`, BOB)).status, 404);
    const cancelled = await deleteJob(`${gateway.url}/v1/jobs/${queued.json.id}`, ALICE);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.json.status, 'cancelled');
    assert.equal((await job(queued.json.id)).json.status, 'cancelled');
    await waitFor('the blocker to complete', async () => (await job(blocker.json.id)).json.status === 'completed');
    assert.equal(simulator.stats.requestsByPath['/v1/chat/completions'], 1);
  });

  it('cancels a running job: the upstream call is aborted', async () => {
    simulator.resetStats();
    const created = await postJson(`${gateway.url}/v1/jobs`, chatBody({ x_sim: { fault: 'hang' } }), as(ALICE));
    await waitFor('the job to run', async () => (await job(created.json.id)).json.status === 'active');
    await waitFor('the upstream call to start', () => simulator.stats.running === 1);
    const cancelling = await deleteJob(`${gateway.url}/v1/jobs/${created.json.id}`, ALICE);
    assert.equal(cancelling.status, 200);
    // Running: cancelled only once its worker confirms.
    assert.equal(cancelling.json.status, 'cancelling');
    await simulator.waitForClientAborts(1, 5000);
    await waitFor('the job to settle as cancelled', async () => (await job(created.json.id)).json.status === 'cancelled');
    // Cancelling again answers the cancelled job, not a conflict.
    const again = await deleteJob(`${gateway.url}/v1/jobs/${created.json.id}`, ALICE);
    assert.equal(again.status, 200);
    assert.equal(again.json.status, 'cancelled');
  });

  it('keeps jobs that failed for good in the dead-letter list for the admin', async () => {
    const created = await postJson(`${gateway.url}/v1/jobs`, chatBody({ x_sim: { fault: 'error', status: 500 } }), as(ALICE));
    const failed = await waitFor('the job to fail', async () => {
      const res = await job(created.json.id);
      return res.json.status === 'failed' ? res.json : undefined;
    });
    assert.equal(failed.error.type, 'upstream_error');
    const letters = await getJson(`${gateway.url}/admin/jobs?status=failed`, as(ADMIN));
    assert.equal(letters.status, 200);
    const entry = letters.json.data.find((e: { id: string }) => e.id === created.json.id);
    assert.ok(entry, 'the failed job is listed');
    assert.equal(entry.error.type, 'upstream_error');
    assert.equal((await getJson(`${gateway.url}/admin/jobs?status=failed`, as(ALICE))).status, 403);
  });

  it('reports queue stats in the contract shape', async () => {
    const stats = await getJson(`${gateway.url}/v1/queue/stats`, as(BOB));
    assert.equal(stats.status, 200);
    assert.deepEqual(Object.keys(stats.json).sort(), ['active', 'by_priority', 'capacity_percent', 'max_concurrent', 'max_queue_size', 'waiting']);
    assert.deepEqual(Object.keys(stats.json.by_priority).sort(), ['high', 'low', 'normal']);
    assert.equal(stats.json.max_concurrent, 1);
  });
});
