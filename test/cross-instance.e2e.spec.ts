import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { after, afterEach, before, describe, it } from 'node:test';
import Redis from 'ioredis';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { chatBody, getJson, parseSse, postJson, send } from './support/http';
import { Stack, startStack } from './support/stack';
import { waitFor } from './support/wait';

async function deleteJob(url: string): Promise<{ status: number; json: any }> {
  const res = await send(url, { method: 'DELETE' });
  return { status: res.status, json: await res.json() };
}

/** Resident memory of a process, in MB. */
function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:')) ?? '';
  return Number(/(\d+)/.exec(line)?.[1] ?? 0) / 1024;
}

describe('one gateway across instances: cancellation', () => {
  let stack: Stack;
  let simulator: UpstreamSimulator;
  let redis: Redis;

  before(async () => {
    ({ simulator } = stack = await startStack({ gateway: false, simulator: { latencyMs: 5, chunkIntervalMs: 200 }, env: { RETRY_MAX_ATTEMPTS: '1' } }));
    redis = new Redis(stack.redis.url, { maxRetriesPerRequest: 1 });
  });

  after(async () => {
    redis?.disconnect();
    await stack?.stop('SIGKILL');
  });

  afterEach(() => stack?.stopGateways());

  it('a stream aborted by its client at a front door stops the upstream call on the worker instance', async () => {
    const front = await stack.startGateway({ WORKER_ENABLED: 'false' });
    const worker = await stack.startGateway();
    simulator.resetStats();
    const controller = new AbortController();
    const response = await send(`${front.url}/v1/chat/completions`, { method: 'POST', body: chatBody({ stream: true, x_sim: { chunks: 50 } }), signal: controller.signal });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    await reader.read();
    await waitFor('the upstream stream to run', () => simulator.stats.running === 1);
    controller.abort();
    await simulator.waitForClientAborts(1, 5000);
    await waitFor('the slot to come back', async () => (await redis.zcard('bulwark:slots')) === 0);
    await Promise.all([front.stop('SIGKILL'), worker.stop('SIGKILL')]);
  });

  it('DELETE of a running job at one instance aborts its upstream call on another, and a cancel sent while subscribers reconnect still lands', async () => {
    const front = await stack.startGateway({ WORKER_ENABLED: 'false' });
    const worker = await stack.startGateway();
    for (const dropSubscribers of [false, true]) {
      simulator.resetStats();
      const created = await postJson(`${front.url}/v1/jobs`, chatBody({ x_sim: { fault: 'hang' } }));
      await waitFor('the job to run', () => simulator.stats.running === 1);
      // Every pub/sub connection is cut: the cancel message published now is lost to them.
      if (dropSubscribers) await redis.client('KILL', 'TYPE', 'pubsub');
      const cancelling = await deleteJob(`${front.url}/v1/jobs/${created.json.id}`);
      assert.equal(cancelling.status, 200);
      assert.equal(cancelling.json.status, 'cancelling');
      await simulator.waitForClientAborts(1, 5000);
      await waitFor('the job to read cancelled', async () => (await getJson(`${front.url}/v1/jobs/${created.json.id}`)).json.status === 'cancelled');
      const again = await deleteJob(`${worker.url}/v1/jobs/${created.json.id}`);
      assert.equal(again.status, 200);
      assert.equal(again.json.status, 'cancelled');
    }
    await Promise.all([front.stop('SIGKILL'), worker.stop('SIGKILL')]);
  });
});

describe('one gateway across instances: stream relay', () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack({ gateway: false, simulator: { latencyMs: 0, chunkIntervalMs: 0 }, env: { RETRY_MAX_ATTEMPTS: '1' } });
  });

  after(() => stack?.stop('SIGKILL'));

  afterEach(() => stack?.stopGateways());

  it('relays a long stream in order through Redis', async () => {
    const front = await stack.startGateway({ WORKER_ENABLED: 'false' });
    const worker = await stack.startGateway();
    const response = await send(`${front.url}/v1/chat/completions`, { method: 'POST', body: chatBody({ stream: true, x_sim: { chunks: 3000 } }), timeoutMs: 30_000 });
    const events = parseSse(await response.text());
    assert.equal(events.at(-1), '[DONE]');
    const failure = events.find((e) => e !== '[DONE]' && JSON.parse(e).error);
    assert.equal(failure, undefined, `the stream failed: ${failure}`);
    const text = events.slice(0, -1).map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '').join('');
    assert.equal(text.split(' ').filter(Boolean).length, 3000);
    assert.match(text, /^word1 word2 word3 /);
    await Promise.all([front.stop('SIGKILL'), worker.stop('SIGKILL')]);
  });

  it('a client that reads far slower than the upstream writes: memory stays bounded, the stream ends with an SSE error event then [DONE] (or completes)', async () => {
    const front = await stack.startGateway({ WORKER_ENABLED: 'false' });
    const worker = await stack.startGateway();
    const before = rssMb(front.child.pid!);
    const url = new URL(`${front.url}/v1/chat/completions`);
    const body = JSON.stringify(chatBody({ stream: true, x_sim: { chunks: 150_000 } }));
    let peak = before;
    const text = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        // Read nothing for a while: the socket fills, the relay must not buffer without bound.
        res.pause();
        const sampler = setInterval(() => (peak = Math.max(peak, rssMb(front.child.pid!))), 50);
        setTimeout(() => {
          clearInterval(sampler);
          let out = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (out += chunk));
          res.on('end', () => resolve(out));
          res.resume();
        }, 4000);
      });
      req.on('error', reject);
      req.end(body);
    });
    const events = parseSse(text);
    assert.equal(events.at(-1), '[DONE]');
    const last = JSON.parse(events.at(-2) ?? '{}');
    const completed = events.length === 150_001;
    assert.ok(completed || last.error?.type, `the stream ended neither complete nor with an error event: ${events.at(-2)}`);
    assert.ok(peak - before < 150, `the front door grew by ${Math.round(peak - before)} MB`);
    await Promise.all([front.stop('SIGKILL'), worker.stop('SIGKILL')]);
  });
});
