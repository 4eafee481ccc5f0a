import type { Context, Span } from '@opentelemetry/api';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { TracingService } from './tracing.service';

/** Probes and scrapes would drown the traces that matter. */
const UNTRACED = /^\/(health|metrics)(\/|\?|$)/;

/** The server span of each traced request, by its raw request (what the log mixin and hooks see). */
const serverSpans = new WeakMap<IncomingMessage, { span: Span; context: Context }>();

/** The trace and span ids of a request's server span, for its log lines; undefined when untraced. */
export function requestTraceFields(raw: IncomingMessage): { trace_id: string; span_id: string } | undefined {
  const entry = serverSpans.get(raw);
  if (!entry) return undefined;
  const { traceId, spanId } = entry.span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/**
 * One SERVER span per request (its incoming `traceparent` as parent), active while Bulwark handles
 * it: from the first hook and again from `preHandler` (body parsing runs on socket events, outside
 * the request's async context), so guards, the controller and the queue see it. The span ends when
 * the response closes, whatever happened. Registered only when tracing is on.
 */
export function registerServerSpanHooks(fastify: FastifyInstance, tracing: () => TracingService | undefined): void {
  fastify.addHook('onRequest', (request, reply, done) => {
    const tracer = tracing();
    if (!tracer?.enabled || UNTRACED.test(request.url)) return done();
    const route = request.routeOptions.url ?? 'unmatched';
    const span = tracer.startSpan(
      `${request.method} ${route}`,
      { 'http.request.method': request.method, 'http.route': route, 'url.path': request.url.split('?')[0], 'bulwark.request_id': String(request.id) },
      { kind: SpanKind.SERVER, parentContext: tracer.extract(request.headers) },
    );
    const active = trace.setSpan(context.active(), span);
    serverSpans.set(request.raw, { span, context: active });
    reply.raw.once('close', () => {
      const status = reply.raw.statusCode;
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
      if (!reply.raw.writableFinished) span.setAttribute('bulwark.client_closed', true);
      span.end();
    });
    context.with(active, done);
  });
  fastify.addHook('preHandler', (request: FastifyRequest, _reply, done) => {
    const entry = serverSpans.get(request.raw);
    if (!entry) return done();
    context.with(entry.context, done);
  });
}
