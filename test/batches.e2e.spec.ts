import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { chatLine, fileLines, InputLine, jsonl, OutputLine, untilStatus, upload } from './support/batch-files';
import { GatewayProcess } from './support/gateway-process';
import { Stack, startStack } from './support/stack';
import { waitFor } from './support/wait';

/** The APIError `promise` rejects with; fails the test if it resolves or rejects with anything else. */
async function apiError(promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof OpenAI.APIError, `expected an OpenAI.APIError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the call to fail');
}

/** What the simulator itself answers for a chat body: the gateway must hand back exactly this. */
async function simulatorContent(upstreamUrl: string, body: Record<string, unknown>): Promise<unknown> {
  const res = await fetch(`${upstreamUrl}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, user: 'direct' }) });
  const answer = (await res.json()) as { choices: { message: { content: unknown } }[] };
  return answer.choices[0].message.content;
}

describe('files and batches through the openai client', () => {
  let stack: Stack;
  let gateway: GatewayProcess;
  let client: OpenAI;
  let other: OpenAI;

  before(async () => {
    stack = await startStack({
      gateway: false,
      upstreams: (url) => ({ upstreams: [{ name: 'sim', url, models: ['sim-small', 'sim-large'] }] }),
      env: { API_KEYS: 'key-a:normal,key-b:normal', FILES_MAX_BYTES: '65536', BATCH_MAX_LINES: '50', RETRY_MAX_ATTEMPTS: '2', RETRY_BASE_DELAY_MS: '10' },
    });
    gateway = await stack.startGateway();
    client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'key-a', maxRetries: 0, timeout: 20_000 });
    other = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'key-b', maxRetries: 0, timeout: 20_000 });
  });

  after(() => stack?.stop());

  it('runs a batch to completed: one output line per answered line, failures in the error file', async () => {
    const good = Array.from({ length: 12 }, (_, i) => chatLine(`req-${i}`));
    // The upstream refuses one line (a client error, passed through) and keeps failing another.
    const refused = chatLine('refused', { x_sim: { fault: 'error', status: 400 } });
    const broken = chatLine('broken', { x_sim: { fault: 'error', status: 500 } });
    const input = await upload(client, jsonl([...good.slice(0, 6), refused, ...good.slice(6), broken]));
    assert.equal(input.object, 'file');
    assert.equal(input.purpose, 'batch');
    assert.equal((await client.files.retrieve(input.id)).bytes, input.bytes);

    const created = await client.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { run: 'one' } });
    assert.equal(created.object, 'batch');
    assert.deepEqual(created.metadata, { run: 'one' });
    assert.equal(created.request_counts?.total, 14);

    const done = await untilStatus(client, created.id, ['completed', 'failed', 'expired', 'cancelled']);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.request_counts, { total: 14, completed: 12, failed: 2 });
    assert.ok(done.completed_at && done.finalizing_at && done.output_file_id && done.error_file_id);

    const output = await fileLines<OutputLine>(client, done.output_file_id);
    assert.deepEqual(output.map((l) => l.custom_id).sort(), good.map((l) => l.custom_id).sort());
    for (const line of output) {
      const sent = good.find((g) => g.custom_id === line.custom_id) as InputLine;
      assert.equal(line.error, null);
      assert.equal(line.response?.status_code, 200);
      assert.match(line.response?.request_id ?? '', /^req_/);
      const body = line.response?.body as { choices: { message: { content: unknown } }[] };
      assert.equal(body.choices[0].message.content, await simulatorContent(stack.upstreamUrl, sent.body));
    }
    const errors = await fileLines<OutputLine>(client, done.error_file_id);
    const byId = new Map(errors.map((l) => [l.custom_id, l]));
    assert.deepEqual([...byId.keys()].sort(), ['broken', 'refused']);
    assert.equal(byId.get('refused')?.response?.status_code, 400);
    assert.equal(byId.get('broken')?.response?.status_code, 502);
    assert.equal((byId.get('broken')?.response?.body as { error: { code: string } }).error.code, 'upstream_error');
    // Retried within the retry budget before it was given up: two attempts upstream.
    assert.equal(stack.simulator.stats.requestsByUser.broken, 2);

    const outputFile = await client.files.retrieve(done.output_file_id);
    assert.equal(outputFile.purpose, 'batch_output');
    const listed = await client.batches.list();
    assert.ok(listed.data.some((b) => b.id === created.id));
    const files = await client.files.list();
    assert.ok(files.data.some((f) => f.id === input.id));

    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    assert.match(metrics, /^bulwark_batches\{status="completed"\} [1-9]/m);
    assert.match(metrics, /^bulwark_batch_lines_total\{outcome="completed"\} (1[2-9]|[2-9]\d)/m);
    assert.match(metrics, /^bulwark_batch_lines_total\{outcome="failed"\} [2-9]/m);
    const dashboard = await waitFor('the dashboard to show the lines done', async () => {
      const data = (await (await fetch(`${gateway.url}/dashboard/data`)).json()) as { history: { batches: { linesWaiting: number; linesDone: { completed: number } } }[] };
      const last = data.history.at(-1)?.batches;
      return last && last.linesDone.completed >= 12 ? last : undefined;
    });
    assert.equal(dashboard.linesWaiting, 0);
  });

  it('shows files and batches only to the key that made them', async () => {
    const input = await upload(client, jsonl([chatLine('mine')]));
    const batch = await client.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    assert.equal((await apiError(other.files.retrieve(input.id))).status, 404);
    assert.equal((await apiError(other.files.content(input.id))).status, 404);
    assert.equal((await apiError(other.files.delete(input.id))).status, 404);
    assert.equal((await apiError(other.batches.retrieve(batch.id))).status, 404);
    assert.equal((await apiError(other.batches.cancel(batch.id))).status, 404);
    assert.equal((await apiError(other.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' }))).status, 404);
    assert.ok(!(await other.files.list()).data.some((f) => f.id === input.id));
    assert.ok(!(await other.batches.list()).data.some((b) => b.id === batch.id));
    await untilStatus(client, batch.id, ['completed']);
    const deleted = await client.files.delete(input.id);
    assert.equal(deleted.deleted, true);
    assert.equal((await apiError(client.files.retrieve(input.id))).status, 404);
  });

  it('refuses a bad input with a 400 naming the line, and queues nothing', async () => {
    const cases: [string, unknown[], RegExp][] = [
      ['bad JSON', [chatLine('a'), chatLine('b'), '{"custom_id": "c", '], /Line 3\b.*not valid JSON/],
      ['no custom_id', [chatLine('a'), { method: 'POST', url: '/v1/chat/completions', body: { model: 'sim-small' } }], /Line 2\b.*custom_id/],
      ['duplicate ids', [chatLine('a'), chatLine('b'), chatLine('a')], /Line 3\b.*"a".*earlier line/],
      ['another url', [chatLine('a'), { ...chatLine('b'), url: '/v1/embeddings' }], /Line 2\b.*url/],
      ['GET', [{ ...chatLine('a'), method: 'GET' }], /Line 1\b.*method/],
      ['unknown model', [chatLine('a'), chatLine('b', { model: 'no-such-model' })], /Line 2\b.*no-such-model/],
    ];
    const before = (await client.batches.list()).data.length;
    const startedBefore = stack.simulator.stats.requestsTotal;
    for (const [what, lines, message] of cases) {
      const input = await upload(client, jsonl(lines));
      const error = await apiError(client.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' }));
      assert.equal(error.status, 400, what);
      assert.equal((error.error as { type: string }).type, 'invalid_request_error', what);
      assert.match(error.message, message, what);
    }
    assert.equal((await client.batches.list()).data.length, before);
    assert.equal(stack.simulator.stats.requestsTotal, startedBefore);
    const input = await upload(client, jsonl([chatLine('a')]));
    const wrongWindow = await apiError(client.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '48h' as '24h' }));
    assert.equal(wrongWindow.status, 400);
    const wrongEndpoint = await apiError(client.batches.create({ input_file_id: input.id, endpoint: '/v1/images' as '/v1/embeddings', completion_window: '24h' }));
    assert.equal(wrongEndpoint.status, 400);
    const missing = await apiError(client.batches.create({ input_file_id: 'file-nope', endpoint: '/v1/chat/completions', completion_window: '24h' }));
    assert.equal(missing.status, 404);
  });

  it('answers 413 past the file size and line limits', async () => {
    const big = 'x'.repeat(70_000);
    const tooBig = await apiError(upload(client, big));
    assert.equal(tooBig.status, 413);
    assert.equal((tooBig.error as { code: string }).code, 'body_too_large');
    const many = await upload(client, jsonl(Array.from({ length: 51 }, (_, i) => chatLine(`n${i}`))));
    const tooMany = await apiError(client.batches.create({ input_file_id: many.id, endpoint: '/v1/chat/completions', completion_window: '24h' }));
    assert.equal(tooMany.status, 413);
    assert.match(tooMany.message, /BATCH_MAX_LINES/);
  });

  it('refuses an upload that is not a batch file', async () => {
    const { toFile } = await import('openai');
    const wrongPurpose = await apiError(client.files.create({ file: await toFile(Buffer.from('{}\n'), 'x.jsonl'), purpose: 'assistants' }));
    assert.equal(wrongPurpose.status, 400);
    const res = await fetch(`${gateway.url}/v1/files`, { method: 'POST', headers: { authorization: 'Bearer key-a', 'content-type': 'multipart/form-data; boundary=zz' }, body: 'garbage' });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'invalid_body');
  });
});
