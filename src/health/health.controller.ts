import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { Kind } from '../common/route-kind.decorator';
import { ShutdownService } from '../common/shutdown.service';
import { RedisHealthIndicator } from '../redis/redis.health';
import { UpstreamHealthIndicator } from '../upstream/upstream.health';

/** Health routes: they only list the indicators, which live with what they check. */
@Controller('health')
@Kind('public')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly redis: RedisHealthIndicator,
    private readonly upstreams: UpstreamHealthIndicator,
    private readonly shutdown: ShutdownService,
  ) {}

  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([]);
  }

  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([
      () => this.redis.isHealthy(),
      () => this.upstreams.isHealthy(),
      () => {
        const indicator = this.indicators.check('lifecycle');
        return this.shutdown.draining ? indicator.down({ state: 'draining' }) : indicator.up({ state: 'serving' });
      },
    ]);
  }

  @Get()
  @HealthCheck()
  details() {
    return this.health.check([() => this.redis.isHealthy(), () => this.upstreams.isHealthy()]);
  }
}
