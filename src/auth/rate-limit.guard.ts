import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RateLimitedError } from '../common/errors';
import { routeKindOf } from '../common/route-kind.decorator';
import { rateLimitHeaders } from './gcra';
import { RateLimiterService } from './rate-limiter.service';

/**
 * Applies `RATE_LIMIT_RPM` to each client key on client and inference routes. The `X-RateLimit-*`
 * headers go on the reply before anything is thrown, so that the 429 (and any later answer) keeps them.
 * Admin, anonymous (auth off) and public requests are not limited.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly limiter: RateLimiterService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (!this.limiter.enabled) return true;
    const kind = routeKindOf(this.reflector, context);
    if (kind !== 'inference' && kind !== 'client') return true;
    const http = context.switchToHttp();
    const client = http.getRequest<FastifyRequest>().bulwark?.client;
    if (!client || client.admin || client.id === 'anonymous') return true;
    const decision = await this.limiter.consume(client.id);
    void http.getResponse<FastifyReply>().headers(rateLimitHeaders(decision));
    if (!decision.allowed) throw new RateLimitedError(decision.limit, decision.retryAfterMs);
    return true;
  }
}
