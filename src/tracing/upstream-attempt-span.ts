import { Span, SpanKind } from '@opentelemetry/api';
import { UpstreamClientError, UpstreamError } from '../common/errors';
import { markFailed, TracingService } from './tracing.service';

/** Which call an upstream attempt span stands for. */
export interface AttemptFacts {
  upstream: string;
  /** The model sent upstream. */
  model: string;
  /** The model the client asked for; differs when a fallback serves. */
  requestedModel: string;
  /** 0 for the first call to this upstream, then 1, 2… for retries. */
  retry: number;
}

/** A CLIENT span for one call to one upstream; the `traceparent` sent with the call names it. */
export function startAttemptSpan(tracing: TracingService, facts: AttemptFacts): Span {
  return tracing.startSpan(
    'upstream attempt',
    {
      'bulwark.upstream': facts.upstream,
      'gen_ai.request.model': facts.model,
      'bulwark.requested_model': facts.requestedModel,
      'bulwark.retry': facts.retry,
      'bulwark.fallback': facts.model !== facts.requestedModel,
    },
    { kind: SpanKind.CLIENT },
  );
}

/** Ends an attempt span with the upstream's status, and the error's code when the attempt failed. */
export function endAttemptSpan(span: Span, outcome: { status?: number; error?: unknown }): void {
  const status = outcome.status ?? statusOf(outcome.error);
  if (status !== undefined) span.setAttribute('http.response.status_code', status);
  if (outcome.error !== undefined) markFailed(span, outcome.error);
  span.end();
}

function statusOf(error: unknown): number | undefined {
  if (error instanceof UpstreamError) return error.upstreamStatus;
  if (error instanceof UpstreamClientError) return error.status;
  return undefined;
}
