import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Clock } from '../common/clock';
import { settleWithin } from '../common/deadline';
import { routingConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { LOOKUP_PREFIX, RECORD_PREFIX } from './prefix-index-scripts';

/** A lookup that takes longer than this is routed without prefix figures rather than waited for. */
const LOOKUP_TIMEOUT_MS = 100;
const LRU_KEY = 'bulwark:prefix-lru';
const blockKey = (hash: string) => `bulwark:prefix:${hash}`;

/**
 * Which upstream recently served which prompt blocks, shared by every instance in Redis: bounded
 * (`PREFIX_INDEX_MAX_BLOCKS`, least recently used first out) and expiring (`PREFIX_INDEX_TTL_MS`).
 * One read per routed request (a script over the chain's keys); writes never make a request wait.
 * With Redis away, lookups find nothing and requests are routed by load alone.
 */
@Injectable()
export class PrefixIndex {
  private readonly logger = new Logger(PrefixIndex.name);

  constructor(
    private readonly redis: RedisService,
    private readonly clock: Clock,
    @Inject(routingConfig.KEY) private readonly config: Pick<ConfigType<typeof routingConfig>, 'indexMaxBlocks' | 'indexTtlMs'>,
  ) {}

  /** Per upstream, the deepest block of `chain` it recently served (upstreams that served none are absent). */
  async lookup(chain: readonly string[]): Promise<Map<string, number>> {
    const held = new Map<string, number>();
    if (chain.length === 0 || !this.redis.ready) return held;
    const read = this.redis.client.eval(LOOKUP_PREFIX, chain.length, ...chain.map(blockKey)) as Promise<unknown>;
    const found = await settleWithin(
      read.catch((error: Error) => {
        this.logger.debug(`prefix lookup failed: ${error.message}`);
        return [];
      }),
      LOOKUP_TIMEOUT_MS,
      [],
    );
    if (!Array.isArray(found)) return held;
    for (let i = 0; i + 1 < found.length; i += 2) held.set(String(found[i]), Number(found[i + 1]));
    return held;
  }

  /** Marks `chain` as served by `upstream` now; fire-and-forget. */
  record(chain: readonly string[], upstream: string): void {
    if (chain.length === 0 || !this.redis.ready) return;
    const keys = [...chain.map(blockKey), LRU_KEY];
    void (this.redis.client.eval(RECORD_PREFIX, keys.length, ...keys, upstream, String(this.clock.now()), String(this.config.indexTtlMs), String(this.config.indexMaxBlocks)) as Promise<unknown>).catch(
      (error: Error) => this.logger.debug(`prefix record failed: ${error.message}`),
    );
  }
}
