import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { chatBody, postJson, postSse } from './support/http';
import { OtlpReceiver, ReceivedSpan, startOtlpReceiver } from './support/otlp-receiver';
import { GatewayStack, startStack } from './support/stack';
import { waitFor } from './support/wait';

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

describe('tracing: OpenTelemetry spans over OTLP/HTTP', () => {
  let stack: GatewayStack;
  let receiver: OtlpReceiver;

  before(async () => {
    receiver = await startOtlpReceiver();
    stack = await startStack({
      upstreams: (url) => ({ upstreams: [{ name: 'sim', url, models: ['sim-small', 'sim-large'] }], fallbacks: { 'sim-large': ['sim-small'] } }),
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_SERVICE_NAME: 'bulwark-e2e',
        RETRY_MAX_ATTEMPTS: '2',
        RETRY_BASE_DELAY_MS: '10',
        RETRY_MAX_DELAY_MS: '20',
      },
    });
  });

  after(async () => {
    await stack?.stop();
    await receiver?.stop();
  });

  /** The spans of one trace, once the request's server span (the last to end) has arrived. */
  const traceOf = (traceId: string) =>
    waitFor(`the spans of trace ${traceId}`, () => {
      const spans = receiver.spans.filter((s) => s.traceId === traceId);
      return spans.some((s) => s.kind === 2) && spans.some((s) => s.name === 'upstream attempt') ? spans : undefined;
    });
  const only = (spans: ReceivedSpan[], name: string) => {
    const found = spans.filter((s) => s.name === name);
    assert.equal(found.length, 1, `one "${name}" span in ${JSON.stringify(spans.map((s) => s.name))}`);
    return found[0];
  };

  it('continues the caller\'s trace: request span → admission, queue wait, upstream attempt; traceparent sent upstream; ids in the logs', async () => {
    const traceId = hex(16);
    const callerSpanId = hex(8);
    const requestId = `trace-${hex(4)}`;
    const res = await postJson(`${stack.url}/v1/chat/completions`, chatBody(), { traceparent: `00-${traceId}-${callerSpanId}-01`, 'x-request-id': requestId });
    assert.equal(res.status, 200, res.text);
    const upstreamTraceparent = String(stack.simulator.stats.lastHeaders?.traceparent);

    const spans = await traceOf(traceId);
    const server = spans.find((s) => s.kind === 2)!;
    assert.equal(server.name, 'POST /v1/chat/completions');
    assert.equal(server.parentSpanId, callerSpanId);
    assert.equal(server.serviceName, 'bulwark-e2e');
    assert.equal(server.attributes['http.response.status_code'], 200);
    assert.equal(server.attributes['bulwark.request_id'], requestId);

    const admission = only(spans, 'admission');
    const queueWait = only(spans, 'queue wait');
    const attempt = only(spans, 'upstream attempt');
    for (const child of [admission, queueWait, attempt]) assert.equal(child.parentSpanId, server.spanId, child.name);
    assert.equal(admission.attributes['bulwark.priority'], 'normal');
    assert.equal(admission.attributes['gen_ai.request.model'], 'sim-small');
    assert.equal(queueWait.attributes['bulwark.priority'], 'normal');
    assert.equal(typeof queueWait.attributes['bulwark.queue_wait_ms'], 'number');
    assert.equal(attempt.kind, 3); // CLIENT
    assert.deepEqual(
      [attempt.attributes['bulwark.upstream'], attempt.attributes['gen_ai.request.model'], attempt.attributes['bulwark.retry'], attempt.attributes['bulwark.fallback'], attempt.attributes['http.response.status_code']],
      ['sim', 'sim-small', 0, false, 200],
    );

    // The upstream got a traceparent naming the attempt span, in the same trace.
    assert.equal(upstreamTraceparent, `00-${traceId}-${attempt.spanId}-01`);

    // Every log line of the request carries the trace id.
    const requestLine = await waitFor('the request log line', () =>
      stack.gateway.logLines().find((l) => (l.req as { id?: string } | undefined)?.id === requestId && l.res !== undefined),
    );
    assert.equal(requestLine.trace_id, traceId);
    assert.match(String(requestLine.span_id), /^[0-9a-f]{16}$/);
    assert.ok(receiver.contentTypes.every((type) => type.startsWith('application/json')), receiver.contentTypes.join());
  });

  it('one attempt span per retry and per fallback, with its status; a stream\'s attempt ends with the stream', async () => {
    const traceId = hex(16);
    // sim-large fails twice with a 500: its retries are spent, then the fallback sim-small serves the stream.
    const res = await postSse(
      `${stack.url}/v1/chat/completions`,
      chatBody({ model: 'sim-large', stream: true, x_sim: { fault: 'error', status: 500, times: 2, key: `fail-${traceId}` } }),
      { traceparent: `00-${traceId}-${hex(8)}-01` },
    );
    assert.equal(res.status, 200);
    const spans = await waitFor('three attempts', async () => {
      const all = await traceOf(traceId);
      return all.filter((s) => s.name === 'upstream attempt').length >= 3 ? all : undefined;
    });
    const attempts = spans
      .filter((s) => s.name === 'upstream attempt')
      .map((s) => [s.attributes['gen_ai.request.model'], s.attributes['bulwark.retry'], s.attributes['bulwark.fallback'], s.attributes['http.response.status_code'], s.status?.code ?? 0]);
    attempts.sort((a, b) => String(a[0]).localeCompare(String(b[0])) || Number(a[1]) - Number(b[1]));
    assert.deepEqual(attempts, [
      ['sim-large', 0, false, 500, 2],
      ['sim-large', 1, false, 500, 2],
      ['sim-small', 0, true, 200, 0],
    ]);
  });

  it('off without an endpoint: no traceparent upstream, no trace ids in the logs', async () => {
    // Its own Redis: a traced worker sharing the queue would run (and trace) the job.
    const plain = await startStack();
    try {
      const requestId = `untraced-${hex(4)}`;
      const res = await postJson(`${plain.url}/v1/chat/completions`, chatBody(), { traceparent: `00-${hex(16)}-${hex(8)}-01`, 'x-request-id': requestId });
      assert.equal(res.status, 200, res.text);
      assert.equal(plain.simulator.stats.requestsByPath['/v1/chat/completions'], 1);
      assert.equal(plain.simulator.stats.lastHeaders?.traceparent, undefined);
      const line = await waitFor('the request log line', () => plain.gateway.logLines().find((l) => (l.req as { id?: string } | undefined)?.id === requestId && l.res !== undefined));
      assert.equal(line.trace_id, undefined);
    } finally {
      await plain.stop();
    }
  });
});
