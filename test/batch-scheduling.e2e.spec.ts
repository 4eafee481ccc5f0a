import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { chatLine, fileLines, jsonl, OutputLine, untilStatus, upload } from './support/batch-files';
import { getJson } from './support/http';
import { Stack, startStack } from './support/stack';
import { waitFor } from './support/wait';

const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Interactive question' }];

function sdk(url: string): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
}

/** A batch line that holds its upstream call for `latencyMs`. */
function slowLine(customId: string, latencyMs: number) {
  return chatLine(customId, { x_sim: { latencyMs } });
}

async function runBatch(client: OpenAI, lines: unknown[]): Promise<OpenAI.Batch> {
  const input = await upload(client, jsonl(lines));
  return client.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
}

async function linesRunning(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^bulwark_batch_lines_running (\d+)/m.exec(text)?.[1] ?? 0);
}

describe('batch lines on idle capacity', () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack({ gateway: false, simulator: { latencyMs: 5, chunkIntervalMs: 5 } });
  });
  afterEach(() => stack.stopGateways());
  after(() => stack?.stop());

  it('stops the batch line started last when an interactive request of any priority finds every slot taken', async () => {
    const gateway = await stack.startGateway({ MAX_CONCURRENT_REQUESTS: '1' });
    const client = sdk(gateway.url);
    stack.simulator.resetStats();
    const started = () => stack.simulator.stats.startedUsers;
    const batch = await runBatch(client, [slowLine('line-0', 3000), chatLine('line-1'), chatLine('line-2')]);
    for (const [n, priority] of [[1, 'normal'], [2, 'low']] as const) {
      await waitFor(`line-0 to start (time ${n})`, () => started().length === 2 * n - 1 && started().at(-1) === 'line-0');
      await client.chat.completions.create({ model: 'sim-small', messages, max_tokens: 2, user: `interactive-${n}` }, { headers: { 'X-Priority': priority } });
    }
    const done = await untilStatus(client, batch.id, ['completed']);
    // line-0 held the only slot each time; it gave it up, ran again, and was answered once.
    assert.deepEqual(started(), ['line-0', 'interactive-1', 'line-0', 'interactive-2', 'line-0', 'line-1', 'line-2']);
    assert.equal(stack.simulator.stats.clientAborts, 2);
    assert.equal(stack.simulator.stats.completedByUser['line-0'], 1);
    const output = await fileLines<OutputLine>(client, done.output_file_id as string);
    assert.deepEqual(output.map((l) => l.custom_id), ['line-0', 'line-1', 'line-2']);
  });

  it('stops a line running on another instance for a request queued by a front door that runs no work', async () => {
    const worker = await stack.startGateway({ MAX_CONCURRENT_REQUESTS: '1' });
    const front = await stack.startGateway({ MAX_CONCURRENT_REQUESTS: '1', WORKER_ENABLED: 'false' });
    stack.simulator.resetStats();
    const started = () => stack.simulator.stats.startedUsers;
    const batch = await runBatch(sdk(front.url), [slowLine('line-0', 3000), chatLine('line-1')]);
    await waitFor('line-0 to start', () => started()[0] === 'line-0');
    // Give the front door's sweep a moment to see the batch: it preempts only while batches run.
    await waitFor('the front door to count the batch', async () => /^bulwark_batch_lines_waiting [1-9]/m.test(await (await fetch(`${front.url}/metrics`)).text()));
    await sdk(front.url).chat.completions.create({ model: 'sim-small', messages, max_tokens: 2, user: 'interactive-1' });
    await untilStatus(sdk(worker.url), batch.id, ['completed']);
    assert.deepEqual(started(), ['line-0', 'interactive-1', 'line-0', 'line-1']);
    assert.equal(stack.simulator.stats.completedByUser['line-0'], 1);
  });

  it('without preemption, gives every freed slot to a waiting interactive request before the next batch line', async () => {
    const gateway = await stack.startGateway({ MAX_CONCURRENT_REQUESTS: '1', BATCH_PREEMPT: 'false' });
    const client = sdk(gateway.url);
    stack.simulator.resetStats();
    const started = () => stack.simulator.stats.startedUsers;
    const batch = await runBatch(client, [slowLine('line-0', 3000), slowLine('line-1', 3000), chatLine('line-2'), chatLine('line-3')]);

    for (const [n, priority] of [[1, 'normal'], [2, 'low']] as const) {
      await waitFor(`line-${n - 1} to start`, () => started().includes(`line-${n - 1}`));
      const interactive = client.chat.completions.create({ model: 'sim-small', messages, max_tokens: 2, user: `interactive-${n}` }, { headers: { 'X-Priority': priority } });
      await waitFor('the interactive request to wait for the slot', async () => ((await getJson(`${gateway.url}/v1/queue/stats`)).json as { waiting: number }).waiting >= 1);
      // It queued while the batch line still held the only slot.
      assert.equal(started().at(-1), `line-${n - 1}`);
      await interactive;
    }
    await untilStatus(client, batch.id, ['completed']);
    assert.deepEqual(started(), ['line-0', 'interactive-1', 'line-1', 'interactive-2', 'line-2', 'line-3']);
    assert.equal(stack.simulator.stats.clientAborts, 0);
  });

  it('stops new lines at once on cancel and ends cancelled with the lines done in its output', async () => {
    const gateway = await stack.startGateway({ MAX_CONCURRENT_REQUESTS: '2' });
    const client = sdk(gateway.url);
    stack.simulator.resetStats();
    const ids = Array.from({ length: 20 }, (_, i) => `c-${i}`);
    const batch = await runBatch(client, ids.map((id) => slowLine(id, 300)));
    await waitFor('some lines to complete', async () => ((await client.batches.retrieve(batch.id)).request_counts?.completed ?? 0) >= 3, 20_000);
    const cancelling = await client.batches.cancel(batch.id);
    assert.ok(['cancelling', 'cancelled'].includes(cancelling.status));
    const startedAtCancel = stack.simulator.stats.startedUsers.length;
    const cancelled = await untilStatus(client, batch.id, ['cancelled', 'completed']);
    assert.equal(cancelled.status, 'cancelled');
    assert.ok(cancelled.cancelling_at && cancelled.cancelled_at);
    const done = cancelled.request_counts?.completed ?? 0;
    assert.ok(done >= 3 && done < ids.length, `${done} lines done`);
    // Lines already claimed when the cancel landed may still start; nothing claimed after it does.
    assert.ok(stack.simulator.stats.startedUsers.length <= startedAtCancel + 2);
    const output = await fileLines<OutputLine>(client, cancelled.output_file_id as string);
    assert.equal(output.length, done);
    assert.equal(new Set(output.map((l) => l.custom_id)).size, done);
    for (const line of output) assert.equal(stack.simulator.stats.completedByUser[line.custom_id], 1);
    const again = await client.batches.cancel(batch.id).catch((error: unknown) => error);
    assert.ok(again instanceof OpenAI.APIError && again.status === 409);
  });

  it('ends expired past its completion window, with the lines not run in the error file', async () => {
    const gateway = await stack.startGateway({ MAX_CONCURRENT_REQUESTS: '1', BATCH_COMPLETION_WINDOW_MS: '1500' });
    const client = sdk(gateway.url);
    const ids = Array.from({ length: 12 }, (_, i) => `e-${i}`);
    const batch = await runBatch(client, ids.map((id) => slowLine(id, 400)));
    const expired = await untilStatus(client, batch.id, ['expired', 'completed'], 20_000);
    assert.equal(expired.status, 'expired');
    assert.ok(expired.expired_at);
    const output = await fileLines<OutputLine>(client, expired.output_file_id as string);
    const errors = await fileLines<OutputLine>(client, expired.error_file_id as string);
    assert.ok(output.length > 0 && output.length < ids.length);
    assert.deepEqual([...output, ...errors].map((l) => l.custom_id).sort(), [...ids].sort());
    for (const line of errors) assert.equal(line.error?.code, 'batch_expired');
    assert.deepEqual(expired.request_counts, { total: ids.length, completed: output.length, failed: errors.length });
  });

  it('keeps files and batches through a restart of every instance and of Redis', async () => {
    const env = { MAX_CONCURRENT_REQUESTS: '2' };
    const before = sdk((await stack.startGateway(env)).url);
    const ids = Array.from({ length: 12 }, (_, i) => `r-${i}`);
    const text = jsonl(ids.map((id) => slowLine(id, 300)));
    const input = await upload(before, text);
    const batch = await before.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await waitFor('some lines to complete', async () => ((await before.batches.retrieve(batch.id)).request_counts?.completed ?? 0) >= 2, 20_000);
    await stack.stopGateways('SIGKILL');
    await stack.redis.restart();
    const after = sdk((await stack.startGateway(env)).url);
    assert.equal(await (await after.files.content(input.id)).text(), text);
    const done = await untilStatus(after, batch.id, ['completed'], 60_000);
    const output = await fileLines<OutputLine>(after, done.output_file_id as string);
    assert.deepEqual(output.map((l) => l.custom_id).sort(), [...ids].sort());
  });

  it('loses no line and records none twice when the instance running lines is killed (kill -9)', async () => {
    const env = { MAX_CONCURRENT_REQUESTS: '4', QUEUE_LOCK_MS: '1000' };
    const gateways = [await stack.startGateway(env), await stack.startGateway(env), await stack.startGateway(env)];
    stack.simulator.resetStats();
    const ids = Array.from({ length: 40 }, (_, i) => `k-${i}`);
    const batch = await runBatch(sdk(gateways[0].url), ids.map((id) => slowLine(id, 300)));
    const victim = await waitFor('a gateway to run lines', async () => {
      for (const gateway of gateways) if ((await linesRunning(gateway.url)) > 0) return gateway;
      return undefined;
    });
    await victim.stop('SIGKILL');
    const client = sdk(gateways.find((g) => g !== victim)!.url);
    const done = await untilStatus(client, batch.id, ['completed'], 60_000);
    assert.deepEqual(done.request_counts, { total: ids.length, completed: ids.length, failed: 0 });
    const output = await fileLines<OutputLine>(client, done.output_file_id as string);
    assert.deepEqual(output.map((l) => l.custom_id).sort(), [...ids].sort());
    const completed = stack.simulator.stats.completedByUser;
    for (const id of ids) assert.ok((completed[id] ?? 0) >= 1, `${id} was answered upstream`);
    // A line runs twice to completion only if the kill fell between its answer and its record.
    const extra = ids.reduce((sum, id) => sum + (completed[id] ?? 0), 0) - ids.length;
    assert.ok(extra <= 4, `${extra} lines answered upstream twice`);
    assert.ok(stack.simulator.stats.clientAborts >= 1, 'the killed instance had lines in flight');
  });
});
