import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { RedisService } from './redis.service';

/** Terminus indicator: Redis answers PING within a second. */
@Injectable()
export class RedisHealthIndicator {
  constructor(
    private readonly redis: RedisService,
    private readonly health: HealthIndicatorService,
  ) {}

  async isHealthy(key = 'redis') {
    const indicator = this.health.check(key);
    const started = performance.now();
    const up = await this.redis.ping(1000);
    const latencyMs = Math.round((performance.now() - started) * 10) / 10;
    return up ? indicator.up({ latency_ms: latencyMs }) : indicator.down({ message: 'Redis does not answer' });
  }
}
