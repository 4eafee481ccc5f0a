import { Controller, Get, Header, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AuthService } from '../auth/auth.service';
import { Kind } from '../common/route-kind.decorator';
import { MetricsService } from './metrics.service';

/** `GET /metrics`: Prometheus text. Public, or the admin key's only with `METRICS_AUTH=admin`. */
@Controller('metrics')
@Kind('public')
export class MetricsController {
  constructor(
    private readonly metrics: MetricsService,
    private readonly auth: AuthService,
  ) {}

  @Get()
  @Header('Cache-Control', 'no-store')
  async scrape(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    // Throws the contract's 401/403 for a missing or non-admin key.
    if (this.auth.metricsNeedAdmin) this.auth.authorize('admin', request.headers);
    void reply.header('content-type', this.metrics.contentType);
    return this.metrics.scrape();
  }
}
