import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { settleWithin } from '../common/deadline';
import type { ConfigType } from '@nestjs/config';
import { Attributes, context, INVALID_SPAN_CONTEXT, propagation, ROOT_CONTEXT, Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Context } from '@opentelemetry/api';
import { BulwarkError } from '../common/errors';
import { redactUrl } from '../config/environment';
import { tracingConfig } from '../config/sections';
import { startTracingSdk, TracingSdk } from './tracing-sdk';

/** Returned whenever tracing is off: every method is a no-op. */
const NOOP_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
const FLUSH_DEADLINE_MS = 3000;

export interface SpanOptions {
  kind?: SpanKind;
  /** Epoch milliseconds; default now. */
  startTime?: number;
  /** A W3C `traceparent` to hang the span under, instead of the active span. */
  parent?: string;
  /** A context to hang the span under (a server span's extracted parent). */
  parentContext?: Context;
}

/**
 * Bulwark's OpenTelemetry tracing, off unless an OTLP endpoint is configured. Off, every method costs a
 * branch: no SDK, no context manager, spans are one shared no-op object. The trace context crosses the
 * queue as a `traceparent` string (see {@link carrier}), so a worker on any instance continues the trace.
 */
@Injectable()
export class TracingService implements OnApplicationShutdown {
  private readonly logger = new Logger(TracingService.name);
  private readonly sdk?: TracingSdk;

  constructor(@Inject(tracingConfig.KEY) settings: ConfigType<typeof tracingConfig>) {
    if (settings.enabled && settings.tracesUrl) {
      this.sdk = startTracingSdk({ tracesUrl: settings.tracesUrl, serviceName: settings.serviceName });
      this.logger.log(`tracing on: spans go to ${redactUrl(settings.tracesUrl)} as service ${settings.serviceName}`);
    }
  }

  get enabled(): boolean {
    return this.sdk !== undefined;
  }

  /** The active span as a W3C `traceparent`, to store with queued work or send upstream; undefined when off. */
  carrier(): string | undefined {
    if (!this.sdk) return undefined;
    const carrier: Record<string, string> = {};
    propagation.inject(context.active(), carrier);
    return carrier.traceparent;
  }

  /** The context a request's headers carry (an incoming `traceparent`), for its server span. */
  extract(headers: Record<string, string | string[] | undefined>): Context {
    return this.sdk ? propagation.extract(ROOT_CONTEXT, headers) : ROOT_CONTEXT;
  }

  /** Runs `fn` with `traceparent` (from {@link carrier}) as the active context. */
  runWithParent<T>(traceparent: string | undefined, fn: () => T): T {
    if (!this.sdk || !traceparent) return fn();
    return context.with(propagation.extract(ROOT_CONTEXT, { traceparent }), fn);
  }

  /** Starts a span under the active span (or the given parent); end it yourself. */
  startSpan(name: string, attributes: Attributes, options: SpanOptions = {}): Span {
    if (!this.sdk) return NOOP_SPAN;
    const parent = options.parentContext ?? (options.parent ? propagation.extract(ROOT_CONTEXT, { traceparent: options.parent }) : context.active());
    return this.sdk.tracer.startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes, startTime: options.startTime }, parent);
  }

  /** Runs `fn` with `span` active: spans started and `traceparent`s sent inside are its children. */
  withSpan<T>(span: Span, fn: () => T): T {
    if (!this.sdk || span === NOOP_SPAN) return fn();
    return context.with(trace.setSpan(context.active(), span), fn);
  }

  /** Runs `fn` inside a new span that ends with it; a throw marks the span failed. */
  inSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => T): T {
    if (!this.sdk) return fn(NOOP_SPAN);
    const span = this.startSpan(name, attributes);
    const end = (error?: unknown) => {
      if (error !== undefined) markFailed(span, error);
      span.end();
    };
    try {
      const result = this.withSpan(span, () => fn(span));
      if (result instanceof Promise) {
        return result.then(
          (value) => (end(), value),
          (error: unknown) => {
            end(error);
            throw error;
          },
        ) as T;
      }
      end();
      return result;
    } catch (error) {
      end(error);
      throw error;
    }
  }

  /** Records a span that already happened, e.g. the time a job waited in the queue. */
  recordSpan(name: string, parent: string | undefined, startMs: number, endMs: number, attributes: Attributes): void {
    if (!this.sdk) return;
    this.startSpan(name, attributes, { parent, startTime: startMs }).end(endMs);
  }

  /** Flushes what is still batched, within a deadline, and stops the SDK. */
  async onApplicationShutdown(): Promise<void> {
    if (!this.sdk) return;
    const flushed = await settleWithin(
      this.sdk.shutdown().then(() => true, () => false),
      FLUSH_DEADLINE_MS,
      false,
    );
    if (!flushed) this.logger.warn(`tracing: could not flush the last spans within ${FLUSH_DEADLINE_MS} ms`);
  }
}

/** Marks a span failed with the contract's error code (never a message: it may quote a prompt). */
export function markFailed(span: Span, error: unknown): void {
  const code = error instanceof BulwarkError ? error.code : error instanceof Error ? error.name : 'error';
  span.setAttribute('error.type', code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: code });
}
