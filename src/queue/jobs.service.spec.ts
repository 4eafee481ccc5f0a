import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JobNotCancellableError, NotFoundError } from '../common/errors';
import type { InferenceJobData, InferenceJobResult } from './inference-job';
import { JobsService } from './jobs.service';
import type { AnswerOutcome, JobTokens } from '../auth/token-usage.service';

type State = 'prioritized' | 'waiting' | 'active' | 'completed' | 'failed';

interface FakeJob {
  id: string;
  data: InferenceJobData;
  timestamp: number;
  processedOn?: number;
  finishedOn?: number;
  returnvalue?: InferenceJobResult;
  failedReason?: string;
  state: State;
  removed: boolean;
  removeFails?: boolean;
  getState(): Promise<State>;
  remove(): Promise<void>;
}

function job(id: string, state: State, extra: Partial<FakeJob> = {}, owner = 'alice'): FakeJob {
  const fake: FakeJob = {
    id,
    state,
    removed: false,
    timestamp: 1_700_000_000_000,
    data: {
      requestId: 'r',
      clientId: owner,
      priority: 'normal',
      path: '/chat/completions',
      model: 'm',
      body: {},
      stream: false,
      enqueuedAt: 1_700_000_000_000,
      deadlineAt: 1_700_000_600_000,
      mode: 'async',
      origin: 'i',
      retriesAllowed: true,
    },
    getState: async () => fake.state,
    remove: async () => {
      if (fake.removeFails) throw new Error('job is locked');
      fake.removed = true;
    },
    ...extra,
  };
  return fake;
}

function setup(jobs: FakeJob[], options: { cancelRequested?: string[]; rank?: number } = {}) {
  const store = new Map<string, string>();
  const cancelled: string[] = [];
  const forgotten: string[] = [];
  const queue = {
    keys: { prioritized: 'bulwark:inference:prioritized' },
    getJob: async (id: string) => jobs.find((j) => j.id === id && !j.removed),
  };
  const redis = {
    client: {
      get: async (key: string) => store.get(key) ?? null,
      set: async (key: string, value: string) => void store.set(key, value),
      zrank: async () => options.rank ?? null,
    },
  };
  const delivery = {
    cancel: async (id: string) => void cancelled.push(id),
    cancelRequested: async (id: string) => (options.cancelRequested ?? []).includes(id),
  };
  const slots = { forget: async (id: string) => void forgotten.push(id) };
  const settled: { clientId: string; reserved?: number; answered: boolean }[] = [];
  const tokens = {
    endJob: (clientId: string, carried: JobTokens, _model: string, outcome: AnswerOutcome) =>
      void settled.push({ clientId, reserved: carried.reservation?.reserved, answered: outcome.answered }),
  };
  const service = new JobsService(
    queue as never,
    { jobResultTtlMs: 60_000, maxQueueSize: 10, maxConcurrent: 2 } as never,
    delivery as never,
    {} as never,
    redis as never,
    slots as never,
    tokens as never,
  );
  return { service, cancelled, forgotten, store, settled };
}

describe('JobsService', () => {
  it('shows a job to its owner only, and the same not-found to anyone else', async () => {
    const { service } = setup([job('j1', 'prioritized')], { rank: 0 });
    assert.equal((await service.get('j1', 'alice')).id, 'j1');
    await assert.rejects(service.get('j1', 'mallory'), NotFoundError);
    await assert.rejects(service.get('nope', 'alice'), NotFoundError);
  });

  it('says queued with its position until a worker starts it', async () => {
    const { service } = setup([job('j1', 'prioritized')], { rank: 2 });
    const view = await service.get('j1', 'alice');
    assert.equal(view.status, 'queued');
    assert.equal(view.position, 3);
    assert.equal(view.started_at, null);
    assert.equal(view.attempts, null);
  });

  it('answers a just-submitted job as queued, even when a fast worker already took it', async () => {
    const taken = job('j1', 'active', { processedOn: 1_700_000_000_050 });
    const { service } = setup([taken]);
    const view = await service.submitted(taken as never);
    assert.equal(view.status, 'queued');
    assert.equal(view.started_at, null);
  });

  it('reports the upstream attempts of completed and failed jobs', async () => {
    const done = job('ok', 'completed', {
      processedOn: 1_700_000_001_000,
      finishedOn: 1_700_000_002_000,
      returnvalue: { outcome: 'succeeded', status: 200, body: { id: 'x' }, upstream: 'u', model: 'm', queueWaitMs: 1000, durationMs: 1000, attempts: 2 },
    });
    const failure = { status: 502, headers: {}, body: { error: { message: 'boom', type: 'upstream_error', code: 'upstream_error' } }, attempts: 3 };
    const failed = job('bad', 'failed', { failedReason: JSON.stringify(failure) });
    const { service } = setup([done, failed]);
    const okView = await service.get('ok', 'alice');
    assert.equal(okView.status, 'completed');
    assert.equal(okView.attempts, 2);
    assert.deepEqual(okView.result, { id: 'x' });
    assert.equal(okView.queue_wait_ms, 1000);
    const badView = await service.get('bad', 'alice');
    assert.equal(badView.status, 'failed');
    assert.equal(badView.attempts, 3);
    assert.deepEqual(badView.error, { message: 'boom', type: 'upstream_error', code: 'upstream_error' });
  });

  it("reads BullMQ's own plain-text failure reasons as an upstream error without attempts", async () => {
    const { service } = setup([job('s', 'failed', { failedReason: 'job stalled more than allowable limit' })]);
    const view = await service.get('s', 'alice');
    assert.equal(view.error?.message, 'job stalled more than allowable limit');
    assert.equal(view.attempts, null);
  });

  it('cancels a queued job at once: removed, cancelled, readable afterwards, its queue place forgotten', async () => {
    const queued = job('q', 'prioritized');
    queued.data.tokens = { keyName: 'alice-key', reservation: { reserved: 1004, promptTokens: 4, perMinute: 6000 } };
    const { service, forgotten, cancelled, settled } = setup([queued], { rank: 0 });
    const view = await service.cancel('q', 'alice');
    assert.equal(view.status, 'cancelled');
    assert.equal(queued.removed, true);
    assert.deepEqual(forgotten, ['q']);
    assert.deepEqual(cancelled, []);
    assert.deepEqual(settled, [{ clientId: 'alice', reserved: 1004, answered: false }], 'its whole reservation is given back, once');
    // Gone from BullMQ, the job is still answered from its tombstone, to its owner only.
    assert.equal((await service.get('q', 'alice')).status, 'cancelled');
    await assert.rejects(service.get('q', 'mallory'), NotFoundError);
    assert.equal((await service.cancel('q', 'alice')).status, 'cancelled');
  });

  it('cancels a running job where it runs: cancelling until its worker confirms', async () => {
    const running = job('a', 'active', { processedOn: 1_700_000_000_100 });
    const first = setup([running]);
    const view = await first.service.cancel('a', 'alice');
    assert.equal(view.status, 'cancelling');
    assert.deepEqual(first.cancelled, ['a']);
    // Asked again before the worker confirmed: still cancelling, no second cancel.
    const again = setup([running], { cancelRequested: ['a'] });
    assert.equal((await again.service.cancel('a', 'alice')).status, 'cancelling');
    assert.deepEqual(again.cancelled, []);
  });

  it('a queued job that a worker took meanwhile is cancelled where it runs', async () => {
    const racing = job('r', 'prioritized', { removeFails: true });
    const { service, cancelled } = setup([racing], { rank: 0 });
    assert.equal((await service.cancel('r', 'alice')).status, 'cancelling');
    assert.deepEqual(cancelled, ['r']);
  });

  it('a confirmed cancellation answers cancelled again; a finished job cannot be cancelled', async () => {
    const confirmed = job('c', 'completed', { returnvalue: { outcome: 'cancelled', queueWaitMs: 5, attempts: 1 } });
    const finished = job('f', 'completed', {
      returnvalue: { outcome: 'succeeded', status: 200, body: {}, upstream: 'u', model: 'm', queueWaitMs: 1, durationMs: 1, attempts: 1 },
    });
    const { service } = setup([confirmed, finished]);
    assert.equal((await service.cancel('c', 'alice')).status, 'cancelled');
    await assert.rejects(service.cancel('f', 'alice'), JobNotCancellableError);
  });

  it("does not cancel another key's job: not found", async () => {
    const { service, cancelled } = setup([job('x', 'active', {}, 'bob')]);
    await assert.rejects(service.cancel('x', 'alice'), NotFoundError);
    assert.deepEqual(cancelled, []);
  });
});
