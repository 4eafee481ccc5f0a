import { Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Clock } from '../common/clock';
import { settleWithin } from '../common/deadline';
import { RedisService } from '../redis/redis.service';
import { AuthService } from './auth.service';
import { limitKeys, TokenPeriod, tokenBuckets } from './rate-limiter.service';
import { bucketFigures } from './token-bucket';
import { tokenLimitsOf } from './token-usage.service';

/** How often the budgets are read from Redis (one MGET for every limited key) for /health and the dashboard. */
export const BUDGET_POLL_MS = 2000;
const READ_TIMEOUT_MS = 1000;

/** One key's token budget in one period, as /health details and the dashboard show it. */
export interface TokenBudget {
  key_name: string;
  period: TokenPeriod;
  limit: number;
  remaining: number;
  reset_ms: number;
}

/**
 * The remaining token budget of every key with token limits, across instances, read from Redis every
 * {@link BUDGET_POLL_MS} so that /health and the dashboard read a cached figure and never wait on Redis.
 */
@Injectable()
export class TokenBudgetsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private budgets: TokenBudget[] = [];
  private readAt?: number;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly auth: AuthService,
    private readonly redis: RedisService,
    private readonly clock: Clock,
  ) {}

  onApplicationBootstrap(): void {
    if (this.limited().length === 0) return;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), BUDGET_POLL_MS).unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** The last budgets read, and when (epoch ms; undefined before the first read). */
  snapshot(): { budgets: TokenBudget[]; readAt?: number } {
    return { budgets: this.budgets, readAt: this.readAt };
  }

  /** Reads every limited key's buckets once; on a failure the last figures stay. */
  async refresh(): Promise<void> {
    const rows = this.limited().flatMap(({ id, name, limits }) =>
      tokenBuckets(limits).map(({ period, bucket }) => ({ name, period, bucket, key: limitKeys(id).tokens[period] })),
    );
    if (rows.length === 0) return;
    const tats = await settleWithin(this.redis.client.mget(...rows.map((r) => r.key)), READ_TIMEOUT_MS, undefined);
    if (!tats) return;
    const now = this.clock.now();
    this.budgets = rows.map((row, i) => {
      const figures = bucketFigures(Number(tats[i] ?? 0), now, row.bucket, true, 0);
      return { key_name: row.name, period: row.period, limit: figures.limit, remaining: figures.remaining, reset_ms: Math.ceil(figures.resetMs) };
    });
    this.readAt = now;
  }

  private limited() {
    return this.auth.clientIdentities().flatMap((client) => {
      const limits = tokenLimitsOf(client);
      return limits ? [{ id: client.id, name: client.name, limits }] : [];
    });
  }
}
