import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { effectivePriority } from '../common/request-context';
import { routeKindOf } from '../common/route-kind.decorator';
import { TracingService } from '../tracing/tracing.service';
import { AdmissionService } from './admission.service';
import { requestSize } from './service-time-model';

/**
 * Refuses upstream-bound requests that admission control turns away, before any job exists; never
 * blocks. Counts no admission: the inference service does, once the queue took the request.
 */
@Injectable()
export class AdmissionGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly admission: AdmissionService,
    private readonly tracing: TracingService,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (routeKindOf(this.reflector, context) !== 'inference') return true;
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const ctx = request.bulwark;
    if (!ctx) return true;
    const body = request.body as { model?: unknown } | undefined;
    const model = typeof body?.model === 'string' ? body.model : undefined;
    const priority = effectivePriority(ctx);
    // An embedding has no output tokens: only its first-token part counts.
    const size = request.routeOptions?.url === '/v1/embeddings' ? { ...requestSize(body), maxTokens: 0 } : requestSize(body);
    // A refusal throws: the span then carries its code (queue_full, load_shed, …).
    const { expectedServiceMs } = this.tracing.inSpan('admission', { 'bulwark.priority': priority, ...(model ? { 'gen_ai.request.model': model } : {}) }, () =>
      this.admission.check({ priority, model, deadlineAt: ctx.deadlineAt, size, clientId: ctx.client.id }),
    );
    ctx.expectedServiceMs = expectedServiceMs;
    return true;
  }
}
