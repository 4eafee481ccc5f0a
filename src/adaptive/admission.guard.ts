import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { effectivePriority } from '../common/request-context';
import { routeKindOf } from '../common/route-kind.decorator';
import { TracingService } from '../tracing/tracing.service';
import { AdmissionService } from './admission.service';

/** Admits or refuses upstream-bound requests before any job exists; never blocks. */
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
    // A refusal throws: the span then carries its code (queue_full, load_shed, …).
    this.tracing.inSpan('admission', { 'bulwark.priority': priority, ...(model ? { 'gen_ai.request.model': model } : {}) }, () =>
      this.admission.admit({ priority, model, deadlineAt: ctx.deadlineAt }),
    );
    return true;
  }
}
