import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { UpstreamError } from '../common/errors';
import { TracingService } from '../tracing/tracing.service';
import { UpstreamClient } from './upstream-client';
import type { UpstreamDefinition } from './upstream.types';

/** Named SSE events, as OpenAI and vLLM frame a Responses API stream. */
const named = (...types: string[]) => types.map((type, i) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: i })}\n\n`).join('');

/** What the fake upstream streams, by the request's `input`. */
const STREAMS: Record<string, string> = {
  complete: named('response.created', 'response.output_text.delta', 'response.completed'),
  failed: named('response.created', 'response.failed'),
  cut: named('response.created', 'response.output_text.delta'),
};

describe('UpstreamClient: Responses API streams end without [DONE]', () => {
  let server: Server;
  let upstream: UpstreamDefinition;
  const client = new UpstreamClient({ maxConcurrent: 4 } as never, new TracingService({ enabled: false, serviceName: 'test' }));

  before(async () => {
    server = createServer((req, res) => {
      let raw = '';
      req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
      req.on('end', () => {
        const { input } = JSON.parse(raw) as { input: string };
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(STREAMS[input]);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    upstream = { name: 'fake', baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, models: [], weight: 1 };
  });

  after(async () => {
    await client.onModuleDestroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** Sends a streamed Responses request and reads every event, or the error that ended the stream. */
  async function read(input: string): Promise<{ types: string[]; error?: unknown }> {
    const answer = await client.send(
      upstream,
      { path: '/responses', model: 'm', body: { model: 'm', input, stream: true }, stream: true },
      { signal: new AbortController().signal, firstByteTimeoutMs: 5000, idleTimeoutMs: 5000 },
    );
    assert.equal(answer.kind, 'stream');
    const types = answer.first.map((data) => (JSON.parse(data) as { type: string }).type);
    try {
      for await (const data of answer.rest) types.push((JSON.parse(data) as { type: string }).type);
    } catch (error) {
      return { types, error };
    }
    return { types };
  }

  it('ends cleanly at the close after response.completed or response.failed', async () => {
    assert.deepEqual(await read('complete'), { types: ['response.created', 'response.output_text.delta', 'response.completed'] });
    assert.deepEqual(await read('failed'), { types: ['response.created', 'response.failed'] });
  });

  it('treats a close before the final event as a broken stream', async () => {
    const { types, error } = await read('cut');
    assert.deepEqual(types, ['response.created', 'response.output_text.delta']);
    assert.ok(error instanceof UpstreamError, String(error));
    assert.match(error.message, /closed the stream before its final event/);
  });
});
