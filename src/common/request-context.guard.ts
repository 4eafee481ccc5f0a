import { CanActivate, ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { queueConfig, serverConfig } from '../config/sections';
import { attachRequestContext } from './request-context';
import { ASYNC_JOB_ROUTE, AsyncWhen, isAsyncRequest, routeKindOf } from './route-kind.decorator';

/** First guard: gives every non-public request its context (deadline, priority, abort signal). */
@Injectable()
export class RequestContextGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(serverConfig.KEY) private readonly server: ConfigType<typeof serverConfig>,
    @Inject(queueConfig.KEY) private readonly queue: ConfigType<typeof queueConfig>,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (routeKindOf(this.reflector, context) === 'public') return true;
    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const asyncWhen = this.reflector.getAllAndOverride<AsyncWhen | undefined>(ASYNC_JOB_ROUTE, [context.getHandler(), context.getClass()]);
    const asyncRoute = isAsyncRequest(asyncWhen, request.body);
    attachRequestContext(request, http.getResponse<FastifyReply>(), {
      requestTimeoutMs: this.server.requestTimeoutMs,
      jobTimeoutMs: this.queue.jobTimeoutMs,
      asyncRoute,
    });
    return true;
  }
}
