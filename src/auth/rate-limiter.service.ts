import { createHash } from 'node:crypto';
import { withDeadline } from '../common/deadline';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Clock } from '../common/clock';
import { BulwarkError } from '../common/errors';
import { authConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { emissionIntervalMs, GCRA_SCRIPT, GcraPolicy, gcraDecision, RateLimitDecision } from './gcra';

/** Longest wait for the rate limiter's Redis before the request is refused rather than left hanging. */
export const RATE_LIMIT_STORE_TIMEOUT_MS = 500;
const PERIOD_MS = 60_000;
const KEY_PREFIX = 'bulwark:ratelimit:';

/** The rate limiter could not reach its shared store: new work is refused (fail closed), never waved through. */
export class RateLimiterUnavailableError extends BulwarkError {
  constructor(cause?: unknown) {
    super('load_shed', "The rate limiter's store is unreachable; no new work is accepted until it is back", { retryAfterMs: 1000, cause });
  }
}

/**
 * The per-key request rate (`RATE_LIMIT_RPM`), shared by every instance through Redis: one script call
 * (EVALSHA, EVAL only the first time a server lacks it) per request.
 */
@Injectable()
export class RateLimiterService {
  private readonly logger = new Logger(RateLimiterService.name);
  private readonly scriptSha = createHash('sha1').update(GCRA_SCRIPT).digest('hex');
  private readonly policy: GcraPolicy;
  private storeDown = false;

  constructor(
    @Inject(authConfig.KEY) config: ConfigType<typeof authConfig>,
    private readonly redis: RedisService,
    private readonly clock: Clock,
  ) {
    this.policy = { limit: config.rateLimitRpm, periodMs: PERIOD_MS };
  }

  /** False when RATE_LIMIT_RPM is 0. */
  get enabled(): boolean {
    return this.policy.limit > 0;
  }

  /**
   * Counts one request of `clientId` and says whether it may go on.
   * @throws RateLimiterUnavailableError when Redis does not answer within {@link RATE_LIMIT_STORE_TIMEOUT_MS}.
   */
  async consume(clientId: string): Promise<RateLimitDecision> {
    const now = this.clock.now();
    const interval = emissionIntervalMs(this.policy);
    const args = [`${KEY_PREFIX}${clientId}`, String(now), String(interval), String(interval * this.policy.limit)];
    let answer: unknown;
    try {
      answer = await withDeadline(this.run(args), RATE_LIMIT_STORE_TIMEOUT_MS);
    } catch (error) {
      if (!this.storeDown) this.logger.warn(`rate limiter store unreachable, refusing new work: ${(error as Error).message}`);
      this.storeDown = true;
      throw new RateLimiterUnavailableError(error);
    }
    if (this.storeDown) this.logger.log('rate limiter store is back');
    this.storeDown = false;
    const [allowed, tat] = answer as [number, number];
    return gcraDecision(allowed === 1, Number(tat), now, this.policy);
  }

  private async run([key, ...argv]: string[]): Promise<unknown> {
    const client = this.redis.client;
    try {
      return await client.evalsha(this.scriptSha, 1, key, ...argv);
    } catch (error) {
      if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error;
      return client.eval(GCRA_SCRIPT, 1, key, ...argv);
    }
  }
}
