import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Clock } from '../common/clock';
import { settleWithin } from '../common/deadline';
import { routingConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { bucketOf, HEDGE_WINDOW_MS, HedgeBudget } from './hedge-budget';

/** This instance's calls reach the shared counts this often (the hedge check adds its own unsent ones). */
const FLUSH_MS = 1000;
/** A budget check that takes longer than this is a refusal: a late hedge is no use anyway. */
const CHECK_TIMEOUT_MS = 100;
const KEY_TTL_MS = HEDGE_WINDOW_MS * 3;
const callsKey = (bucket: number) => `bulwark:hedge-budget:calls:${bucket}`;
const hedgesKey = (bucket: number) => `bulwark:hedge-budget:hedges:${bucket}`;

/**
 * KEYS: calls now, calls before, hedges now, hedges before. ARGV: previous bucket's weight, ratio,
 * this instance's calls not yet added, key TTL ms. The rule of `hedgeFits`, atomically: 1 when the
 * hedge is taken, else 0.
 */
const TRY_HEDGE = `
local function count(key) return tonumber(redis.call('GET', key) or '0') end
local weight = tonumber(ARGV[1])
local calls = count(KEYS[1]) + tonumber(ARGV[3]) + count(KEYS[2]) * weight
local hedges = count(KEYS[3]) + count(KEYS[4]) * weight
if hedges + 1 > tonumber(ARGV[2]) * calls then return 0 end
redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return 1
`;

/**
 * The hedge budget (`HEDGE_BUDGET_RATIO` of recent calls, 5 % by default), shared by every instance
 * through Redis: calls are counted locally and added in one command a second; taking a hedge is one
 * atomic script, only when a hedge is about to start. While Redis is away, this instance keeps within
 * the ratio of its own calls.
 */
@Injectable()
export class HedgeBudgetService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(HedgeBudgetService.name);
  private readonly local: HedgeBudget;
  private unsent = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly redis: RedisService,
    private readonly clock: Clock,
    @Inject(routingConfig.KEY) private readonly config: Pick<ConfigType<typeof routingConfig>, 'hedgeBudgetRatio'>,
  ) {
    this.local = new HedgeBudget(config.hedgeBudgetRatio, clock);
  }

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
    this.flush();
  }

  /** One request dispatched: it earns the budget its share. */
  recordCall(): void {
    this.unsent++;
    this.local.recordCall();
  }

  /** Takes one hedge from the shared budget; false when it would pass the ratio. */
  async tryTake(): Promise<boolean> {
    if (this.config.hedgeBudgetRatio <= 0) return false;
    if (!this.redis.ready) return this.local.tryTake();
    const { bucket, previousWeight } = bucketOf(this.clock.now());
    const taken = this.redis.client.eval(
      TRY_HEDGE,
      4,
      callsKey(bucket),
      callsKey(bucket - 1),
      hedgesKey(bucket),
      hedgesKey(bucket - 1),
      String(previousWeight),
      String(this.config.hedgeBudgetRatio),
      String(this.unsent),
      String(KEY_TTL_MS),
    ) as Promise<unknown>;
    return (await settleWithin(taken, CHECK_TIMEOUT_MS, 0)) === 1;
  }

  private flush(): void {
    if (this.unsent === 0 || !this.redis.ready) return;
    const count = this.unsent;
    this.unsent = 0;
    const key = callsKey(bucketOf(this.clock.now()).bucket);
    this.redis.client
      .pipeline()
      .incrby(key, count)
      .pexpire(key, KEY_TTL_MS)
      .exec()
      .catch((error: Error) => {
        this.unsent += count;
        this.logger.debug(`hedge budget flush failed: ${error.message}`);
      });
  }
}
