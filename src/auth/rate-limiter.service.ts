import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Clock } from '../common/clock';
import { withDeadline } from '../common/deadline';
import { BulwarkError } from '../common/errors';
import { authConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { RateLimitDecision } from './gcra';
import { BucketSettlement, BucketTake, LIMITS_SCRIPT, limitsScriptArgs } from './limits-script';
import { Bucket, bucketFigures, BucketFigures, requestBucket, tokenBucket } from './token-bucket';

/** Longest wait for the rate limiter's Redis before the request is refused rather than left hanging. */
export const RATE_LIMIT_STORE_TIMEOUT_MS = 500;
/**
 * Longest time a finished request's settlement waits for the next admission of this instance to carry
 * it (no round trip of its own) before it is sent alone.
 */
export const SETTLE_FLUSH_MS = 250;
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/** The rate limiter could not reach its shared store: new work is refused (fail closed), never waved through. */
export class RateLimiterUnavailableError extends BulwarkError {
  constructor(cause?: unknown) {
    super('load_shed', "The rate limiter's store is unreachable; no new work is accepted until it is back", { retryAfterMs: 1000, cause });
  }
}

export type TokenPeriod = 'minute' | 'day';

/** A key's token limits, per minute and per day (either may be absent). */
export interface TokenLimits {
  perMinute?: number;
  perDay?: number;
}

/** What one request asks of its key's limits. */
export interface LimitRequest {
  clientId: string;
  /** Requests a minute; absent or 0: not limited. */
  requestsPerMinute?: number;
  /** Tokens to reserve and the key's token limits; absent: not limited. */
  tokens?: TokenLimits & { cost: number };
}

/** The figures of a key's token bucket, for headers, health and the dashboard. */
export interface TokenFigures extends BucketFigures {
  period: TokenPeriod;
}

/** What admission decided for one request, all or nothing, with the figures of every bucket that applies. */
export interface LimitsDecision {
  allowed: boolean;
  requests?: BucketFigures;
  /** The per-minute bucket when the key has one, else the per-day one: what the `-tokens` headers report. */
  tokens?: TokenFigures;
  /** The bucket that had no room, when refused. */
  refusedBy?: { kind: 'requests' } | { kind: 'tokens'; figures: TokenFigures };
}

/** The Redis keys of a client's buckets. */
export function limitKeys(clientId: string): { requests: string; tokens: Record<TokenPeriod, string> } {
  return {
    requests: `bulwark:ratelimit:${clientId}`,
    tokens: { minute: `bulwark:tokens:${clientId}:minute`, day: `bulwark:tokens:${clientId}:day` },
  };
}

/** The token buckets of a key's limits, per period. */
export function tokenBuckets(limits: TokenLimits): { period: TokenPeriod; bucket: Bucket }[] {
  const buckets: { period: TokenPeriod; bucket: Bucket }[] = [];
  if (limits.perMinute) buckets.push({ period: 'minute', bucket: tokenBucket(limits.perMinute, MINUTE_MS) });
  if (limits.perDay) buckets.push({ period: 'day', bucket: tokenBucket(limits.perDay, DAY_MS) });
  return buckets;
}

/**
 * Request and token limits per client key, shared by every instance through Redis. Admission is one
 * script call (EVALSHA; EVAL only when a server lacks it) that takes from every bucket of the key at
 * once and carries the settlements this instance owes, so token limits add no round trip of their own
 * to a request; a settlement that no admission carries within {@link SETTLE_FLUSH_MS} goes alone.
 */
@Injectable()
export class RateLimiterService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(RateLimiterService.name);
  private readonly scriptSha = createHash('sha1').update(LIMITS_SCRIPT).digest('hex');
  private readonly pending = new Map<string, BucketSettlement>();
  private flushTimer?: NodeJS.Timeout;
  private storeDown = false;

  constructor(
    @Inject(authConfig.KEY) private readonly config: ConfigType<typeof authConfig>,
    private readonly redis: RedisService,
    private readonly clock: Clock,
  ) {}

  /** `RATE_LIMIT_RPM`: requests a minute of every key without its own `requestsPerMinute`; 0 is off. */
  get defaultRequestsPerMinute(): number {
    return this.config.rateLimitRpm;
  }

  /**
   * Takes one request (and its tokens) from the key's buckets when every one has room.
   * @throws RateLimiterUnavailableError when Redis does not answer within {@link RATE_LIMIT_STORE_TIMEOUT_MS}.
   */
  async admit(request: LimitRequest): Promise<LimitsDecision> {
    const keys = limitKeys(request.clientId);
    const takes: (BucketTake & { kind: 'requests' | TokenPeriod })[] = [];
    if (request.requestsPerMinute) takes.push({ kind: 'requests', key: keys.requests, bucket: requestBucket(request.requestsPerMinute), cost: 1 });
    if (request.tokens) {
      for (const { period, bucket } of tokenBuckets(request.tokens)) takes.push({ kind: period, key: keys.tokens[period], bucket, cost: request.tokens.cost });
    }
    const now = this.clock.now();
    const [refused, ...tats] = await this.run(now, takes);
    const allowed = refused === 0;
    const figures = takes.map((take, i) => bucketFigures(Number(tats[i]), now, take.bucket, allowed, take.cost));
    const decision: LimitsDecision = { allowed };
    takes.forEach((take, i) => {
      if (take.kind === 'requests') decision.requests = figures[i];
      else decision.tokens ??= { ...figures[i], period: take.kind };
    });
    if (!allowed) {
      const take = takes[refused - 1];
      decision.refusedBy = take.kind === 'requests' ? { kind: 'requests' } : { kind: 'tokens', figures: { ...figures[refused - 1], period: take.kind } };
    }
    return decision;
  }

  /** One request against `RATE_LIMIT_RPM` alone, in the shape of the `X-RateLimit-*` headers. */
  async consume(clientId: string): Promise<RateLimitDecision> {
    const decision = await this.admit({ clientId, requestsPerMinute: this.config.rateLimitRpm });
    return { allowed: decision.allowed, ...decision.requests! };
  }

  /**
   * Corrects the key's token buckets by `delta` tokens (used minus reserved) once a request has ended.
   * Carried by this instance's next admission, or sent alone within {@link SETTLE_FLUSH_MS}.
   */
  settle(clientId: string, limits: TokenLimits, delta: number): void {
    if (delta === 0 || !Number.isFinite(delta)) return;
    const keys = limitKeys(clientId);
    for (const { period, bucket } of tokenBuckets(limits)) {
      const key = keys.tokens[period];
      const owed = this.pending.get(key);
      this.pending.set(key, { key, interval: bucket.interval, delta: (owed?.delta ?? 0) + delta });
    }
    this.flushTimer ??= setTimeout(() => void this.flush(), SETTLE_FLUSH_MS).unref();
  }

  /** Sends the settlements that no admission has carried yet. */
  async flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pending.size === 0) return;
    await this.run(this.clock.now(), []).catch(() => undefined);
  }

  /** Loads the script once, so that the first limited request needs no second round trip (EVAL after NOSCRIPT). */
  onApplicationBootstrap(): void {
    const load = Promise.resolve().then(() => this.redis.client.script('LOAD', LIMITS_SCRIPT));
    void withDeadline(load, RATE_LIMIT_STORE_TIMEOUT_MS * 10).catch(() => undefined);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.flush();
  }

  private async run(now: number, takes: readonly BucketTake[]): Promise<[number, ...string[]]> {
    const settlements = [...this.pending.values()];
    this.pending.clear();
    const { keys, argv } = limitsScriptArgs(now, takes, settlements);
    try {
      const answer = (await withDeadline(this.evaluate(keys, argv), RATE_LIMIT_STORE_TIMEOUT_MS)) as [number, ...string[]];
      if (this.storeDown) this.logger.log('rate limiter store is back');
      this.storeDown = false;
      return answer;
    } catch (error) {
      // Whether the script ran is unknown: the settlements are dropped rather than maybe counted twice.
      if (!this.storeDown) this.logger.warn(`rate limiter store unreachable, refusing new work: ${(error as Error).message}`);
      if (settlements.length > 0) this.logger.warn({ settlements: settlements.length }, 'token settlements dropped: the rate limiter store did not answer');
      this.storeDown = true;
      throw new RateLimiterUnavailableError(error);
    }
  }

  private async evaluate(keys: string[], argv: string[]): Promise<unknown> {
    const client = this.redis.client;
    try {
      return await client.evalsha(this.scriptSha, keys.length, ...keys, ...argv);
    } catch (error) {
      if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error;
      return client.eval(LIMITS_SCRIPT, keys.length, ...keys, ...argv);
    }
  }
}
