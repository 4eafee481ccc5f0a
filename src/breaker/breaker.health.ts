import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { BreakerService } from './breaker.service';

/**
 * Terminus indicator of the circuit breakers: every breaker's key, state and window counts. Down only
 * when breakers exist and every one of them is open, i.e. no upstream+model can take traffic.
 */
@Injectable()
export class BreakerHealthIndicator {
  constructor(
    private readonly breakers: BreakerService,
    private readonly health: HealthIndicatorService,
  ) {}

  /** Up with every breaker's figures, or down when all of them are open. */
  isHealthy(key = 'breakers') {
    const indicator = this.health.check(key);
    const views = this.breakers.list();
    const open = views.filter((v) => v.state === 'open').length;
    const details = {
      total: views.length,
      open,
      breakers: views.map((v) => ({
        key: v.key,
        upstream: v.upstream,
        model: v.model,
        state: v.state,
        calls: v.calls,
        failures: v.failures,
        slow_calls: v.slowCalls,
        failure_ratio: Math.round(v.failureRatio * 10_000) / 10_000,
        retry_in_ms: v.retryInMs,
      })),
    };
    return views.length > 0 && open === views.length ? indicator.down({ ...details, message: 'every circuit breaker is open' }) : indicator.up(details);
  }
}
