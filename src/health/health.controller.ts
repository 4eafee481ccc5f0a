import { Controller, Get, Req, Res } from '@nestjs/common';
import { HealthCheck } from '@nestjs/terminus';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Kind } from '../common/route-kind.decorator';
import { HealthAnswer, HealthReportService } from './health-report.service';

/** Seconds a caller should wait before asking an unhealthy instance again. */
const RETRY_AFTER_S = '5';

/** Health routes: public (they bypass admission), thin; the indicators live with what they check. */
@Controller('health')
@Kind('public')
export class HealthController {
  constructor(private readonly report: HealthReportService) {}

  @Get('live')
  @HealthCheck()
  async live(@Res({ passthrough: true }) reply: FastifyReply) {
    return send(reply, await this.report.liveness());
  }

  @Get('ready')
  @HealthCheck()
  async ready(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply) {
    return send(reply, await this.report.readiness(request));
  }

  @Get()
  @HealthCheck()
  async details(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply) {
    return send(reply, await this.report.detailed(request));
  }
}

/** 200 with the body, or 503 with the headers every 503 of Bulwark carries (API.md §3). */
function send(reply: FastifyReply, answer: HealthAnswer): Record<string, unknown> {
  if (!answer.ok) void reply.status(503).headers({ 'retry-after': RETRY_AFTER_S, 'x-should-retry': 'true' });
  return answer.body;
}
