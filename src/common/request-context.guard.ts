import { CanActivate, ExecutionContext, Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { serverConfig } from '../config/sections';
import { attachRequestContext } from './request-context';
import { routeKindOf } from './route-kind.decorator';

/** First guard: gives every non-public request its context (deadline, priority, abort signal). */
@Injectable()
export class RequestContextGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(serverConfig.KEY) private readonly server: ConfigType<typeof serverConfig>,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (routeKindOf(this.reflector, context) === 'public') return true;
    const http = context.switchToHttp();
    attachRequestContext(http.getRequest<FastifyRequest>(), http.getResponse<FastifyReply>(), this.server.requestTimeoutMs);
    return true;
  }
}
