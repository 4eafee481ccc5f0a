import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import type { ResponseStreamEvent } from 'openai/resources/responses/responses';
import { UpstreamSimulator } from '../src/simulator/simulator';
import type { GatewayProcess } from './support/gateway-process';
import { expectErrorShape, getJson, postJson, send } from './support/http';
import { Stack, startStack } from './support/stack';
import { waitFor } from './support/wait';

const ALICE = 'sk-alice-background';
const BOB = 'sk-bob-background';

function client(url: string, apiKey = ALICE): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 30_000 });
}

/** A Responses API request the simulator answers with `chunks` pieces; `x_sim` is the simulator's own field. */
function body(extra: Record<string, unknown> = {}): any {
  return { model: 'sim-small', input: 'Say something long', ...extra };
}

/** Creates a streamed background response; `xSim` tells the simulator how to answer. */
function createStream(c: OpenAI, xSim: Record<string, unknown>) {
  return c.responses.create({ model: 'sim-small', input: 'Say something long', background: true, stream: true, ...({ x_sim: xSim } as object) });
}

/** Asserts that `events` are exactly sequence numbers 0..n-1, in order: nothing lost, nothing repeated. */
function assertGapless(events: ResponseStreamEvent[]): void {
  assert.deepEqual(
    events.map((e) => e.sequence_number),
    events.map((_, i) => i),
  );
}

/** Reads `stream` into `into` until `stop(event)` says so (then drops the connection) or it ends. */
async function readUntil(stream: AsyncIterable<ResponseStreamEvent>, into: ResponseStreamEvent[], stop: (e: ResponseStreamEvent) => boolean = () => false): Promise<void> {
  for await (const event of stream) {
    into.push(event);
    if (stop(event)) break;
  }
}

describe('background responses (openai SDK, several gateways on one Redis)', () => {
  let stack: Stack;
  let simulator: UpstreamSimulator;

  before(async () => {
    ({ simulator } = stack = await startStack({
      gateway: false,
      simulator: { latencyMs: 5, chunkIntervalMs: 40 },
      env: { API_KEYS: `${ALICE}:high,${BOB}:normal`, RETRY_MAX_ATTEMPTS: '1', QUEUE_LOCK_MS: '2000' },
    }));
  });

  after(() => stack?.stop('SIGKILL'));
  afterEach(() => stack?.stopGateways());

  it('answers queued at once, completes on the queue, and is visible to its own key only, on any instance', async () => {
    const [a, b] = [await stack.startGateway(), await stack.startGateway()];
    const created = await client(a.url).responses.create(body({ background: true, x_sim: { chunks: 5 } }));
    assert.match(created.id, /^resp_[0-9a-f]{48}$/);
    assert.equal(created.object, 'response');
    assert.equal(created.status, 'queued');
    assert.equal(created.background, true);
    assert.equal(created.model, 'sim-small');
    assert.equal((simulator.stats.lastBody as { background?: unknown } | undefined)?.background, undefined, 'the upstream never sees background');

    const done = await waitFor('the response to complete', async () => {
      const seen = await client(b.url).responses.retrieve(created.id);
      return seen.status === 'completed' ? seen : undefined;
    });
    assert.equal(done.id, created.id);
    assert.equal(done.background, true);
    assert.equal(done.created_at, created.created_at);
    assert.equal(done.output_text.trim().split(' ').length, 5);
    assert.ok(done.usage && done.usage.output_tokens > 0);

    for (const url of [a.url, b.url]) {
      const other = await client(url, BOB).responses.retrieve(created.id).catch((e: unknown) => e);
      assert.ok(other instanceof OpenAI.NotFoundError, String(other));
      assert.equal(expectErrorShape({ error: other.error }).code, 'response_not_found');
      assert.ok((await client(url, BOB).responses.cancel(created.id).catch((e: unknown) => e)) instanceof OpenAI.NotFoundError);
    }
    const unknown = await getJson(`${a.url}/v1/responses/resp_${'0'.repeat(48)}`, { authorization: `Bearer ${ALICE}` });
    assert.equal(unknown.status, 404);
    assert.equal(expectErrorShape(unknown.json).type, 'not_found_error');

    // Cancelling a finished response answers it unchanged.
    const cancelled = await client(b.url).responses.cancel(created.id);
    assert.equal(cancelled.status, 'completed');
    assert.deepEqual(cancelled.output, done.output);

    const metrics = await (await send(`${b.url}/metrics`)).text();
    assert.match(metrics, /bulwark_background_responses\{status="completed"\} [1-9]/);
  });

  it('a dropped stream resumes on another instance with every event once: sequence numbers 0..last', async () => {
    const [a, b] = [await stack.startGateway(), await stack.startGateway()];
    simulator.resetStats();
    const first: ResponseStreamEvent[] = [];
    const stream = await createStream(client(a.url), { chunks: 30 });
    await readUntil(stream, first, (e) => e.type === 'response.output_text.delta' && first.filter((f) => f.type === 'response.output_text.delta').length === 3);
    assert.equal(first[0].type, 'response.created');
    const id = (first[0] as OpenAI.Responses.ResponseCreatedEvent).response.id;
    assert.equal((first[0] as OpenAI.Responses.ResponseCreatedEvent).response.status, 'queued');
    const last = first[first.length - 1].sequence_number;

    // The reader is gone; the response runs on: resume where it was left, through the other instance.
    const rest: ResponseStreamEvent[] = [];
    await readUntil(await client(b.url).responses.retrieve(id, { stream: true, starting_after: last }), rest);
    const all = [...first, ...rest];
    assertGapless(all);
    const end = all[all.length - 1] as OpenAI.Responses.ResponseCompletedEvent;
    assert.equal(end.type, 'response.completed');
    assert.equal(end.response.id, id);
    const text = all.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join('');
    assert.equal(text, (await client(a.url).responses.retrieve(id)).output_text, 'the deltas make up the final text');
    assert.equal(text.trim().split(' ').length, 30);
    assert.equal(simulator.stats.clientAborts, 0, 'dropping the reader never stopped the response');

    // The whole log again, from the start, and a resume past its end, which ends at once.
    const again: ResponseStreamEvent[] = [];
    await readUntil(await client(a.url).responses.retrieve(id, { stream: true }), again);
    assert.deepEqual(again, all);
    const none: ResponseStreamEvent[] = [];
    await readUntil(await client(a.url).responses.retrieve(id, { stream: true, starting_after: end.sequence_number }), none);
    assert.deepEqual(none, []);
  });

  it('twenty streams dropped at random points and resumed on other instances, some twice: each one gapless and complete', async () => {
    const gateways: GatewayProcess[] = [];
    for (let i = 0; i < 3; i++) gateways.push(await stack.startGateway({ MAX_CONCURRENT_REQUESTS: '8' }));
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
    const deltas = (events: ResponseStreamEvent[]) => events.filter((e) => e.type === 'response.output_text.delta').length;
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const order = [i % 3, (i + 1) % 3, (i + 2) % 3].map((g) => gateways[g]);
        const drops = [1 + random(25), 26 + random(10)].slice(0, 1 + (i % 2));
        const all: ResponseStreamEvent[] = [];
        await readUntil(await createStream(client(order[0].url), { chunks: 40 }), all, () => deltas(all) === drops[0]);
        const id = (all[0] as OpenAI.Responses.ResponseCreatedEvent).response.id;
        for (let leg = 1; leg <= drops.length; leg++) {
          const stop = drops[leg];
          await readUntil(await client(order[leg].url).responses.retrieve(id, { stream: true, starting_after: all[all.length - 1].sequence_number }), all, (e) => stop !== undefined && e.type === 'response.output_text.delta' && deltas(all) === stop);
        }
        assertGapless(all);
        assert.equal(all[all.length - 1].type, 'response.completed', `response ${i}`);
        const text = all.flatMap((e) => (e.type === 'response.output_text.delta' ? [e.delta] : [])).join('');
        assert.equal(text, (await client(order[2].url).responses.retrieve(id)).output_text);
      }),
    );
  });

  it('refuses a resume it cannot serve with the contract error', async () => {
    const a = await stack.startGateway();
    const plain = await client(a.url).responses.create(body({ background: true, x_sim: { chunks: 2 } }));
    const auth = { authorization: `Bearer ${ALICE}` };
    const notStreamed = await getJson(`${a.url}/v1/responses/${plain.id}?stream=true`, auth);
    assert.equal(notStreamed.status, 400);
    assert.equal(expectErrorShape(notStreamed.json).param, 'stream');
    const badCursor = await getJson(`${a.url}/v1/responses/${plain.id}?stream=true&starting_after=-3`, auth);
    assert.equal(badCursor.status, 400);
    assert.equal(expectErrorShape(badCursor.json).param, 'starting_after');
    const badFlag = await postJson(`${a.url}/v1/responses`, body({ background: 'yes' }), auth);
    assert.equal(badFlag.status, 400);
    assert.equal(expectErrorShape(badFlag.json).param, 'background');
  });

  it('cancel at one instance aborts the upstream call running on another and ends the response cancelled', async () => {
    const front = await stack.startGateway({ WORKER_ENABLED: 'false' });
    await stack.startGateway();
    simulator.resetStats();
    const events: ResponseStreamEvent[] = [];
    const stream = await createStream(client(front.url), { chunks: 500 });
    const reading = readUntil(stream, events).catch((error: unknown) => error);
    await waitFor('output to stream', () => events.some((e) => e.type === 'response.output_text.delta'));
    const cancelled = await client(front.url).responses.cancel((events[0] as OpenAI.Responses.ResponseCreatedEvent).response.id);
    assert.equal(cancelled.status, 'cancelled');
    await simulator.waitForClientAborts(1, 5000);
    // The live reader hears the end: the Responses API's error event, right after the last event.
    const ended = await reading;
    assert.ok(ended instanceof OpenAI.APIError, String(ended));
    assertGapless(events);
    assert.equal((await client(front.url).responses.retrieve(cancelled.id)).status, 'cancelled');
    assert.equal((await client(front.url).responses.cancel(cancelled.id)).status, 'cancelled', 'cancelling again answers it again');
  });

  it('a queued response cancelled before it runs never reaches the upstream', async () => {
    const a = await stack.startGateway({ MAX_CONCURRENT_REQUESTS: '1' });
    simulator.resetStats();
    const blocker = await client(a.url).responses.create(body({ background: true, x_sim: { fault: 'hang' } }));
    await waitFor('the blocker to run', () => simulator.stats.running === 1);
    const queued = await client(a.url).responses.create(body({ background: true, user: 'never-runs' }));
    assert.equal((await client(a.url).responses.retrieve(queued.id)).status, 'queued');
    assert.equal((await client(a.url).responses.cancel(queued.id)).status, 'cancelled');
    assert.equal((await client(a.url).responses.cancel(blocker.id)).status, 'cancelled');
    await simulator.waitForClientAborts(1, 5000);
    const next = await client(a.url).responses.create(body({ background: true, x_sim: { chunks: 1 } }));
    await waitFor('the freed slot to run the next one', async () => (await client(a.url).responses.retrieve(next.id)).status === 'completed');
    assert.equal(simulator.stats.requestsByUser['never-runs'] ?? 0, 0);
  });

  it('survives kill -9 of the instance running it: a plain one and a stream without output yet complete on another; a stream after output ends failed; all gapless', async () => {
    const doomed = await stack.startGateway();
    simulator.resetStats();
    const plain = await client(doomed.url).responses.create(body({ background: true, x_sim: { latencyMs: 1500, chunks: 3 } }));
    const events: ResponseStreamEvent[] = [];
    const stream = await createStream(client(doomed.url), { chunks: 400 });
    const reading = readUntil(stream, events).catch(() => undefined);
    // A stream that has sent nothing of its own yet when its instance dies (its first byte is slow).
    const early: ResponseStreamEvent[] = [];
    const readingEarly = readUntil(await createStream(client(doomed.url), { latencyMs: 10_000, chunks: 4 }), early).catch(() => undefined);
    await waitFor('all three to run on the doomed instance', () => simulator.stats.running === 3 && events.some((e) => e.type === 'response.output_text.delta'));
    const survivor = await stack.startGateway();
    await doomed.stop('SIGKILL');
    await Promise.all([reading, readingEarly]);

    const completed = await waitFor('the plain response to complete on the survivor', async () => {
      const seen = await client(survivor.url).responses.retrieve(plain.id);
      return seen.status === 'completed' ? seen : undefined;
    }, 30_000, 200);
    assert.equal(completed.output_text.trim().split(' ').length, 3);

    const id = (events[0] as OpenAI.Responses.ResponseCreatedEvent).response.id;
    const rest: ResponseStreamEvent[] = [];
    await readUntil(await client(survivor.url).responses.retrieve(id, { stream: true, starting_after: events[events.length - 1].sequence_number }), rest);
    const all = [...events, ...rest];
    assertGapless(all);
    const end = all[all.length - 1] as OpenAI.Responses.ResponseFailedEvent;
    assert.equal(end.type, 'response.failed');
    assert.equal(end.response.error?.code, 'server_error');
    assert.equal((await client(survivor.url).responses.retrieve(id)).status, 'failed');

    // The early one is run again from the start, and its log goes on after what it had: it completes.
    assert.deepEqual(early.map((e) => e.type), ['response.created']);
    const earlyId = (early[0] as OpenAI.Responses.ResponseCreatedEvent).response.id;
    await readUntil(await client(survivor.url).responses.retrieve(earlyId, { stream: true, starting_after: 0 }), early);
    assertGapless(early);
    assert.equal(early[early.length - 1].type, 'response.completed');
    assert.equal(early.filter((e) => e.type === 'response.in_progress').length, 1);
  });

  it('runs plain requests as before when background is absent', async () => {
    const a = await stack.startGateway();
    const res = await postJson(`${a.url}/v1/responses`, body({ x_sim: { chunks: 2 } }), { authorization: `Bearer ${ALICE}` });
    assert.equal(res.status, 200);
    assert.equal(res.json.status, 'completed');
    assert.equal(res.json.background, undefined);
  });
});
