import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { SpanKind, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { QueueFullError } from '../common/errors';
import { validateEnvironment } from '../config/environment';
import { tracingSettings } from '../config/sections';
import { TracingService } from './tracing.service';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT = `00-${TRACE_ID}-b7ad6b7169203331-01`;

describe('tracingSettings (standard OTEL_* variables)', () => {
  it('is off unless an OTLP endpoint is set, and off when the SDK is disabled', () => {
    assert.deepEqual(tracingSettings(validateEnvironment({})), { enabled: false, tracesUrl: undefined, serviceName: 'bulwark' });
    assert.deepEqual(tracingSettings(validateEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/', OTEL_SERVICE_NAME: 'gw' })), {
      enabled: true,
      tracesUrl: 'http://collector:4318/v1/traces',
      serviceName: 'gw',
    });
    assert.equal(tracingSettings(validateEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' })).enabled, false);
  });

  it('takes the traces endpoint as given, over the base endpoint', () => {
    const env = validateEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:9999/custom' });
    assert.equal(tracingSettings(env).tracesUrl, 'http://b:9999/custom');
  });

  it('rejects an endpoint that is not an http(s) URL, hiding its password', () => {
    assert.throws(() => validateEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }), /OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318": must be an http/);
    assert.throws(() => validateEnvironment({ OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://u:secret@c' }), (e: Error) => !e.message.includes('secret'));
  });
});

describe('TracingService off', () => {
  const tracing = new TracingService({ enabled: false, serviceName: 'bulwark' });

  it('carries nothing and records nothing', () => {
    assert.equal(tracing.enabled, false);
    assert.equal(tracing.carrier(), undefined);
    assert.equal(tracing.runWithParent(PARENT, () => tracing.carrier()), undefined);
    const span = tracing.startSpan('x', {});
    assert.equal(span.isRecording(), false);
    assert.equal(tracing.inSpan('y', {}, () => 42), 42);
  });
});

describe('TracingService on', () => {
  // Nothing listens on port 9: exports fail quietly; the spans are read from the SDK's processor below.
  const tracing = new TracingService({ enabled: true, tracesUrl: 'http://127.0.0.1:9/v1/traces', serviceName: 'bulwark' });
  after(() => tracing.onApplicationShutdown());

  it('continues a stored traceparent: carrier() inside runWithParent gives it back, new spans are its children', () => {
    assert.equal(tracing.runWithParent(PARENT, () => tracing.carrier()), PARENT);
    const span = tracing.runWithParent(PARENT, () => tracing.startSpan('child', { a: 1 }, { kind: SpanKind.CLIENT }));
    const { traceId, spanId } = span.spanContext();
    assert.equal(traceId, TRACE_ID);
    assert.equal((span as unknown as ReadableSpan).parentSpanContext?.spanId, 'b7ad6b7169203331');
    // Sent upstream from inside the span, the traceparent names the span itself.
    assert.equal(tracing.withSpan(span, () => tracing.carrier()), `00-${TRACE_ID}-${spanId}-01`);
    span.end();
  });

  it('inSpan makes the span active for sync and async work and marks a thrown typed error with its code', async () => {
    const inner = await tracing.runWithParent(PARENT, () => tracing.inSpan('work', {}, async () => trace.getActiveSpan()?.spanContext().traceId));
    assert.equal(inner, TRACE_ID);
    let failed: ReadableSpan | undefined;
    assert.throws(() =>
      tracing.inSpan('admission', {}, (span) => {
        failed = span as unknown as ReadableSpan;
        throw new QueueFullError(5, 5, 1000);
      }),
    );
    assert.equal(failed?.attributes['error.type'], 'queue_full');
    assert.equal(failed?.status.code, 2);
    assert.equal(failed?.ended, true);
  });

  it('records a span that already happened with its own start and end', () => {
    const spans: ReadableSpan[] = [];
    const original = tracing.startSpan.bind(tracing);
    tracing.startSpan = (...args) => {
      const span = original(...args);
      spans.push(span as unknown as ReadableSpan);
      return span;
    };
    try {
      tracing.recordSpan('queue wait', PARENT, 1_700_000_000_000, 1_700_000_000_250, { 'bulwark.priority': 'low' });
    } finally {
      tracing.startSpan = original;
    }
    assert.equal(spans.length, 1);
    assert.equal(spans[0].spanContext().traceId, TRACE_ID);
    assert.deepEqual(spans[0].duration, [0, 250_000_000]);
  });
});
