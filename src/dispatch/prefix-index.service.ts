import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Clock } from '../common/clock';
import { settleWithin } from '../common/deadline';
import { routingConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { leaseKey } from '../upstream/upstream-leases.service';
import { LOOKUP_PREFIX, RECORD_PREFIX } from './prefix-index-scripts';

/** What one index read says: who holds how much of the chain, and the candidates' live in-flight counts. */
export interface PrefixLookup {
  held: Map<string, number>;
  inFlight?: Map<string, number>;
}

/** A lookup that takes longer than this is routed without prefix figures rather than waited for. */
const LOOKUP_TIMEOUT_MS = 250;
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

  /**
   * Per upstream, the deepest block of `chain` it recently served (upstreams that served none are
   * absent), and the live in-flight count of each of `upstreams` (undefined when Redis did not answer).
   */
  async lookup(chain: readonly string[], upstreams: readonly string[]): Promise<PrefixLookup> {
    const held = new Map<string, number>();
    if (!this.redis.ready || chain.length + upstreams.length === 0) return { held };
    const keys = [...chain.map(blockKey), ...upstreams.map(leaseKey)];
    const read = this.redis.client.eval(LOOKUP_PREFIX, keys.length, ...keys, String(chain.length), String(this.clock.now())) as Promise<unknown>;
    const answer = await settleWithin(
      read.catch((error: Error) => {
        this.logger.debug(`prefix lookup failed: ${error.message}`);
        return undefined;
      }),
      LOOKUP_TIMEOUT_MS,
      undefined,
    );
    if (!Array.isArray(answer) || !Array.isArray(answer[0]) || !Array.isArray(answer[1])) return { held };
    const [found, counts] = answer as [unknown[], unknown[]];
    for (let i = 0; i + 1 < found.length; i += 2) held.set(String(found[i]), Number(found[i + 1]));
    return { held, inFlight: new Map(upstreams.map((name, i) => [name, Number(counts[i] ?? 0)])) };
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
