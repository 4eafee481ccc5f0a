import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RateLimitedError, TokensRateLimitedError } from '../common/errors';
import { routeKindOf } from '../common/route-kind.decorator';
import { rateLimitHeaders } from './gcra';
import { openAiRateLimitHeaders } from './openai-rate-headers';
import { RateLimiterService } from './rate-limiter.service';
import { applyServiceTier } from './service-tier-rights';
import { TokenUsageService } from './token-usage.service';

const EMBEDDINGS_ROUTE = '/v1/embeddings';

/**
 * Applies each client key's limits on client and inference routes: requests a minute (`RATE_LIMIT_RPM` or
 * the key's own) and tokens a minute or a day, in one Redis step that reserves the request's worst case
 * (settled when its answer ends). Before that, an inference body's `service_tier` is checked against the
 * key's rights. Headers (`X-RateLimit-*`, OpenAI's `x-ratelimit-*-requests/-tokens`, `X-Service-Tier`) go
 * on the reply before anything is thrown, so that a refusal (and any later answer) keeps them. Admin,
 * anonymous (auth off) and public requests are not limited.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly limiter: RateLimiterService,
    private readonly tokens: TokenUsageService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const kind = routeKindOf(this.reflector, context);
    if (kind !== 'inference' && kind !== 'client') return true;
    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    const ctx = request.bulwark;
    if (!ctx) return true;
    const embeddings = request.routeOptions?.url === EMBEDDINGS_ROUTE;
    if (kind === 'inference' && !embeddings) void reply.header('x-service-tier', applyServiceTier(ctx, request.body));
    const client = ctx.client;
    if (client.admin || client.id === 'anonymous') return true;
    const requestsPerMinute = client.limits?.requestsPerMinute ?? this.limiter.defaultRequestsPerMinute;
    const tokens = kind === 'inference' ? this.tokens.planFor(client, request.body, embeddings) : undefined;
    if (!requestsPerMinute && !tokens) return true;
    const decision = await this.limiter.admit({ clientId: client.id, requestsPerMinute, tokens });
    void reply.headers({
      ...(decision.requests ? rateLimitHeaders({ allowed: decision.allowed, ...decision.requests }) : {}),
      ...openAiRateLimitHeaders(decision),
    });
    if (decision.refusedBy?.kind === 'requests') throw new RateLimitedError(decision.requests!.limit, decision.requests!.retryAfterMs);
    if (decision.refusedBy?.kind === 'tokens') {
      const { figures } = decision.refusedBy;
      throw new TokensRateLimitedError(figures.limit, figures.period, tokens!.cost, figures.retryAfterMs);
    }
    if (tokens) ctx.tokens = { reserved: tokens.cost, promptTokens: tokens.promptTokens };
    return true;
  }
}
