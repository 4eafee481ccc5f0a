import { Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { routeLabel, statusLabel } from './metric-labels';
import { KeyOutcome, MetricsService } from './metrics.service';

/** Routes whose requests go upstream: counted per client key. */
const UPSTREAM_BOUND_ROUTES = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/jobs']);

/** Refusals that happen before admission control, told apart by their status alone. */
const EARLY_REFUSALS: Record<number, string> = { 401: 'unauthenticated', 429: 'rate_limited' };

/**
 * Times every HTTP exchange from Fastify's `onRequest` to the raw response's `close`, which fires
 * after the last byte of a hijacked SSE stream too (a Nest interceptor would stop at the handler's
 * return). Labels come from the matched route's pattern and the bounded model label.
 */
@Injectable()
export class HttpMetricsHook {
  constructor(private readonly metrics: MetricsService) {}

  /** Starts timing one exchange; call from the application's first `onRequest` hook. */
  observe(request: FastifyRequest, reply: FastifyReply): void {
    const started = performance.now();
    reply.raw.once('close', () => this.record(request, reply.raw.statusCode, reply.raw.headersSent, started));
  }

  private record(request: FastifyRequest, statusCode: number, headersSent: boolean, started: number): void {
    const route = routeLabel(request.routeOptions?.url);
    const status = statusLabel(statusCode, headersSent);
    const body = request.body as { model?: unknown } | undefined;
    this.metrics.recordHttp(route, status, body && typeof body === 'object' ? body.model : undefined, (performance.now() - started) / 1000);
    const client = request.bulwark?.client;
    // A 401 has no key to count it under (the context still holds the anonymous default).
    if (client && statusCode !== 401 && request.method === 'POST' && UPSTREAM_BOUND_ROUTES.has(route)) {
      this.metrics.recordKeyRequest(client.name, keyOutcome(statusCode, headersSent));
    }
    const refusal = EARLY_REFUSALS[statusCode];
    if (refusal && headersSent) this.metrics.recordRejection(refusal);
  }
}

/** What became of an upstream-bound request, for the per-key counts. */
function keyOutcome(statusCode: number, headersSent: boolean): KeyOutcome {
  if (!headersSent) return 'failed';
  // A job's 202 says it was queued, not that it was served.
  if (statusCode === 202) return 'accepted';
  if (statusCode < 300) return 'served';
  if (statusCode === 429 || statusCode === 503) return 'refused';
  return statusCode < 500 ? 'client_error' : 'failed';
}
