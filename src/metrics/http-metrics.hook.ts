import { Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { routeLabel, statusLabel } from './metric-labels';
import { MetricsService } from './metrics.service';

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
    const refusal = EARLY_REFUSALS[statusCode];
    if (refusal && headersSent) this.metrics.recordRejection(refusal);
  }
}
