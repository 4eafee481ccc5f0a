import { CanActivate, createParamDecorator, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { AuthService } from '../auth/auth.service';
import { effectivePriority } from '../common/request-context';
import { routeKindOf } from '../common/route-kind.decorator';
import type { Admission } from '../queue/admission';
import { TracingService } from '../tracing/tracing.service';
import { AdmissionService } from './admission.service';
import { requestSize } from './service-time-model';

declare module 'fastify' {
  interface FastifyRequest {
    /** The admission decision made by {@link AdmissionGuard}; handed to the handler by {@link Admitted}. */
    admission?: Admission;
  }
}

/**
 * Makes the admission decision for upstream-bound requests before any job exists; never blocks. A
 * refusal throws its typed error; an admitted request carries its {@link Admission} to the handler
 * (read with {@link Admitted}). Counts no admission: the queue core does, once it took the request.
 */
@Injectable()
export class AdmissionGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly admission: AdmissionService,
    private readonly auth: AuthService,
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
    const client = { id: ctx.client.id, weight: ctx.client.weight, maxConcurrent: ctx.client.maxConcurrent, queueShare: this.auth.queueShareOf(ctx.client) };
    // A refusal throws: the span then carries its code (queue_full, load_shed, …).
    request.admission = this.tracing.inSpan('admission', { 'bulwark.priority': priority, ...(model ? { 'gen_ai.request.model': model } : {}) }, () =>
      this.admission.decide({ priority, model, deadlineAt: ctx.deadlineAt, size, client }),
    );
    return true;
  }
}

/** The handler's parameter for the request's {@link Admission}, as {@link AdmissionGuard} decided it. */
export const Admitted = createParamDecorator((_data: unknown, context: ExecutionContext): Admission | undefined => {
  return context.switchToHttp().getRequest<FastifyRequest>().admission;
});
