import { Injectable, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheckResult, HealthCheckService, HealthIndicatorFunction, HealthIndicatorService } from '@nestjs/terminus';
import type { FastifyRequest } from 'fastify';
import { AdaptiveService } from '../adaptive/adaptive.service';
import { AuthService } from '../auth/auth.service';
import { TokenBudgetsService } from '../auth/token-budgets.service';
import { BreakerHealthIndicator } from '../breaker/breaker.health';
import { ShutdownService } from '../common/shutdown.service';
import { QueueHealthIndicator } from '../queue/queue.health';
import { RedisHealthIndicator } from '../redis/redis.health';
import { UpstreamHealthIndicator } from '../upstream/upstream.health';

/** A health answer: whether the service can do work, and the body to show to whoever asked. */
export interface HealthAnswer {
  ok: boolean;
  body: Record<string, unknown>;
}

/**
 * Runs the Terminus checks behind the health routes. Every indicator reads cached figures (queue
 * figures, upstream probes, breakers) except Redis's PING, which is bounded by one second, so health
 * never waits on an upstream. With `HEALTH_DETAILS=admin`, only the admin key sees more than `status`.
 */
@Injectable()
export class HealthReportService {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly redis: RedisHealthIndicator,
    private readonly upstreams: UpstreamHealthIndicator,
    private readonly queue: QueueHealthIndicator,
    private readonly breakers: BreakerHealthIndicator,
    private readonly adaptive: AdaptiveService,
    private readonly shutdown: ShutdownService,
    private readonly auth: AuthService,
    private readonly budgets: TokenBudgetsService,
  ) {}

  /** `GET /health`: Terminus's shape plus the top-level `graceful_degradation` section (API.md §5). */
  async detailed(request: FastifyRequest): Promise<HealthAnswer> {
    // Terminus calls every indicator in this same synchronous turn, so this and the queue indicator read
    // the same queue figures.
    const degradation = this.adaptive.gracefulDegradation();
    const { ok, result } = await this.run([
      () => this.redis.isHealthy(),
      () => this.upstreams.isHealthy(),
      () => this.queue.isHealthy(),
      () => this.breakers.isHealthy(),
    ]);
    return this.answer(request, ok, { ...result, graceful_degradation: degradation, ...this.tokenBudgets() });
  }

  /** `token_budgets`: each limited key's remaining tokens per period (read every 2 s), when any key has token limits. */
  private tokenBudgets(): { token_budgets?: { read_at: string | null; keys: unknown[] } } {
    const { budgets, readAt } = this.budgets.snapshot();
    if (budgets.length === 0 && readAt === undefined) return {};
    return { token_budgets: { read_at: readAt === undefined ? null : new Date(readAt).toISOString(), keys: budgets } };
  }

  /** `GET /health/ready`: Redis answers, the instance is not draining, an upstream can take traffic. */
  async readiness(request: FastifyRequest): Promise<HealthAnswer> {
    const { ok, result } = await this.run([
      () => this.redis.isHealthy(),
      () => this.upstreams.isHealthy(),
      () => {
        const indicator = this.indicators.check('lifecycle');
        return this.shutdown.draining ? indicator.down({ state: 'draining' }) : indicator.up({ state: 'serving' });
      },
    ]);
    return this.answer(request, ok, { ...result });
  }

  /** `GET /health/live`: the process serves. */
  async liveness(): Promise<HealthAnswer> {
    const { ok, result } = await this.run([]);
    return { ok, body: { ...result } };
  }

  private answer(request: FastifyRequest, ok: boolean, body: Record<string, unknown>): HealthAnswer {
    const visible = !this.auth.healthDetailsNeedAdmin || this.auth.isAdmin(request);
    return { ok, body: visible ? body : { status: body.status } };
  }

  private async run(checks: HealthIndicatorFunction[]): Promise<{ ok: boolean; result: HealthCheckResult }> {
    try {
      return { ok: true, result: await this.health.check(checks) };
    } catch (error) {
      // Terminus reports a failed check as a 503 exception carrying the full result.
      if (error instanceof ServiceUnavailableException) return { ok: false, result: error.getResponse() as HealthCheckResult };
      throw error;
    }
  }
}
