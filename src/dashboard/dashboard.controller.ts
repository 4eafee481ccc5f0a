import { Controller, Get, Header, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { AuthService } from '../auth/auth.service';
import { Kind } from '../common/route-kind.decorator';
import { dashboardHtml, dashboardScript } from './dashboard.page';
import { DashboardData, DashboardService } from './dashboard.service';
import { DashboardStreams } from './dashboard-streams';

/**
 * `GET /dashboard` (the page, which holds no figures), `GET /dashboard/data` and `GET /dashboard/stream`
 * (the figures: open, or the admin key's only under the same rule as /health details). Public routes:
 * they bypass admission, so the dashboard keeps working when the gateway sheds load.
 */
@Controller('dashboard')
@Kind('public')
export class DashboardController {
  private readonly html = dashboardHtml();
  /** Only the page's own inline script and style may run; nothing may be fetched from elsewhere. */
  private readonly csp = [
    "default-src 'none'",
    `script-src 'sha256-${createHash('sha256').update(dashboardScript()).digest('base64')}'`,
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');

  constructor(
    private readonly dashboard: DashboardService,
    private readonly streams: DashboardStreams,
    private readonly auth: AuthService,
  ) {}

  @Get()
  @Header('Cache-Control', 'no-store')
  page(@Res({ passthrough: true }) reply: FastifyReply): string {
    void reply.headers({ 'content-type': 'text/html; charset=utf-8', 'content-security-policy': this.csp, 'x-content-type-options': 'nosniff' });
    return this.html;
  }

  @Get('data')
  @Header('Cache-Control', 'no-store')
  data(@Req() request: FastifyRequest): DashboardData {
    this.authorize(request);
    return this.dashboard.data();
  }

  @Get('stream')
  stream(@Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    this.authorize(request);
    this.streams.serve(reply);
  }

  /** Throws the contract's 401/403 when figures are the admin's only (`HEALTH_DETAILS=admin`). */
  private authorize(request: FastifyRequest): void {
    if (this.auth.healthDetailsNeedAdmin) this.auth.authorize('admin', request.headers);
  }
}
