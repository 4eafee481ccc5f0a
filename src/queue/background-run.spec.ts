import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CancelledError, UpstreamBadResponseError } from '../common/errors';
import type { ResponseStore, RunStart, StoredResponse } from '../responses/response-store';
import type { ServedAnswer } from '../upstream/upstream.types';
import { BackgroundRun, RERUN_AFTER_OUTPUT } from './background-run';

type Json = Record<string, unknown>;

/** An in-memory store with what BackgroundRun uses; `writable: false` plays a run that was fenced out. */
class FakeStore {
  logged: Json[] = [];
  finished?: { status: string; object: Json; lastEvent?: Json };
  writable = true;

  constructor(
    private readonly stored: Partial<StoredResponse>,
    private readonly startAnswer: RunStart = { before: 'queued', stage: 0 },
  ) {}

  async get(): Promise<StoredResponse> {
    return { owner: 'k', status: 'queued', stream: true, object: { id: 'resp_ours', object: 'response', created_at: 100, background: true }, lastSequence: 0, ...this.stored };
  }
  async start(): Promise<RunStart> {
    return this.startAnswer;
  }
  async append(_id: string, _run: string, event: Json): Promise<number | undefined> {
    if (!this.writable) return undefined;
    this.logged.push(event);
    return this.logged.length;
  }
  async finish(_id: string, _run: string, status: string, object: Json, lastEvent?: Json): Promise<string> {
    if (this.finished) return this.finished.status;
    this.finished = { status, object, lastEvent };
    return 'ok';
  }
}

function streamOf(events: Json[], breakAtEnd = false): ServedAnswer {
  const data = events.map((e) => JSON.stringify(e));
  return {
    kind: 'stream',
    status: 200,
    upstream: 'u',
    model: 'm',
    first: data.slice(0, 1),
    rest: (async function* () {
      yield* data.slice(1);
      if (breakAtEnd) throw new UpstreamBadResponseError('reset');
    })(),
  };
}

const upstreamResponse = (status: string) => ({ id: 'resp_upstream', object: 'response', created_at: 999, status, output: [{ type: 'message' }] });
const upstreamEvents = (): Json[] => [
  { type: 'response.created', sequence_number: 0, response: upstreamResponse('in_progress') },
  { type: 'response.in_progress', sequence_number: 1, response: upstreamResponse('in_progress') },
  { type: 'response.output_text.delta', sequence_number: 2, delta: 'a' },
  { type: 'response.completed', sequence_number: 3, response: upstreamResponse('completed') },
];

async function started(store: FakeStore): Promise<BackgroundRun> {
  const run = await BackgroundRun.start(store as unknown as ResponseStore, 'resp_ours', 1000);
  assert.ok(run);
  return run;
}

describe('BackgroundRun', () => {
  it("logs the upstream's events without its own numbers or its response.created, as this response's, and ends with its last", async () => {
    const store = new FakeStore({});
    await (await started(store)).record(streamOf(upstreamEvents()));
    assert.deepEqual(store.logged.map((e) => e.type), ['response.in_progress', 'response.output_text.delta']);
    assert.ok(store.logged.every((e) => !('sequence_number' in e)), 'the store numbers events');
    assert.equal((store.logged[0].response as Json).id, 'resp_ours');
    assert.equal(store.finished?.status, 'completed');
    assert.equal(store.finished?.object.id, 'resp_ours');
    assert.equal(store.finished?.object.created_at, 100);
    assert.equal(store.finished?.object.background, true);
    assert.equal(store.finished?.lastEvent?.type, 'response.completed');
  });

  it('a re-run before any output logs no second response.in_progress and goes on', async () => {
    const store = new FakeStore({ status: 'in_progress' }, { before: 'in_progress', stage: 1 });
    await (await started(store)).record(streamOf(upstreamEvents()));
    assert.deepEqual(store.logged.map((e) => e.type), ['response.output_text.delta']);
    assert.equal(store.finished?.status, 'completed');
  });

  it('a re-run after output ends the streamed response failed instead of running it again', async () => {
    const store = new FakeStore({ status: 'in_progress' }, { before: 'in_progress', stage: 2 });
    assert.equal(await BackgroundRun.start(store as unknown as ResponseStore, 'resp_ours', 1000), undefined);
    assert.equal(store.finished?.status, 'failed');
    assert.deepEqual(store.finished?.object.error, RERUN_AFTER_OUTPUT);
    assert.equal(store.finished?.lastEvent?.type, 'response.failed');
  });

  it('nothing to run once the response has ended', async () => {
    const store = new FakeStore({ status: 'cancelled' });
    assert.equal(await BackgroundRun.start(store as unknown as ResponseStore, 'resp_ours', 1000), undefined);
    assert.equal(store.finished, undefined);
  });

  it('a stream that breaks or ends early throws, and fail() ends the response with its error', async () => {
    const store = new FakeStore({});
    const run = await started(store);
    await assert.rejects(run.record(streamOf(upstreamEvents().slice(0, 3))), UpstreamBadResponseError);
    await run.fail(new UpstreamBadResponseError('cut'));
    assert.equal(store.finished?.status, 'failed');
    assert.deepEqual(store.finished?.object.error, { code: 'upstream_bad_response', message: 'cut' });
    assert.equal((store.finished?.lastEvent?.response as Json).status, 'failed');
  });

  it('stops with a CancelledError once it may no longer write', async () => {
    const store = new FakeStore({});
    store.writable = false;
    await assert.rejects((await started(store)).record(streamOf(upstreamEvents())), CancelledError);
  });

  it("a JSON answer becomes the final object with the upstream's status", async () => {
    const store = new FakeStore({ stream: false });
    await (await started(store)).record({ kind: 'json', status: 200, upstream: 'u', model: 'm', body: upstreamResponse('incomplete') });
    assert.equal(store.finished?.status, 'incomplete');
    assert.equal(store.finished?.object.id, 'resp_ours');
    assert.deepEqual(store.logged, []);
  });
});
