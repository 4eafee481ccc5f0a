import { context, propagation, Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

/** Spans are sent in batches at least this often (and at shutdown). */
const EXPORT_DELAY_MS = 1000;

/** What the OpenTelemetry SDK needs from Bulwark's config (see `tracingSettings`). */
export interface TracingSdkSettings {
  tracesUrl: string;
  serviceName: string;
  serviceVersion?: string;
}

/** A running SDK: its tracer, and how to flush and stop it. */
export interface TracingSdk {
  tracer: Tracer;
  shutdown(): Promise<void>;
}

/**
 * Starts the minimal OpenTelemetry SDK: a tracer provider batching spans to an OTLP/HTTP (JSON)
 * exporter, W3C trace context propagation, and an AsyncLocalStorage context manager so the active span
 * follows `await`. No auto-instrumentation: Bulwark creates its own spans where its decisions are made.
 * The exporter reads its other standard variables (OTEL_EXPORTER_OTLP_HEADERS, …_TIMEOUT) itself.
 */
export function startTracingSdk(settings: TracingSdkSettings): TracingSdk {
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: settings.serviceName,
      ...(settings.serviceVersion ? { [ATTR_SERVICE_VERSION]: settings.serviceVersion } : {}),
    }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: settings.tracesUrl }), scheduledDelayMillis: EXPORT_DELAY_MS })],
  });
  return {
    tracer: provider.getTracer('bulwark'),
    shutdown: async () => {
      try {
        await provider.shutdown();
      } finally {
        propagation.disable();
        context.disable();
      }
    },
  };
}
