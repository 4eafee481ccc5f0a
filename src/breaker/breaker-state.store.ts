import { Injectable, Logger } from '@nestjs/common';
import type Redis from 'ioredis';
import { ClusterIdentity } from '../cluster/cluster-identity';
import { ClusterSignals } from '../cluster/cluster-signals.service';
import { RedisService } from '../redis/redis.service';
import { BreakerNotice, parseNotice, parseOpenEntry } from './breaker-notice';

const CHANNEL = 'bulwark:breaker:events';
/** `bulwark:breaker:open:<upstream>:<model>`: exists exactly while that breaker is open (PX = time left). */
const OPEN_PREFIX = 'bulwark:breaker:open:';
/** `bulwark:breaker:probe:<upstream>:<model>`: the instance holding the current half-open probe round. */
const PROBE_PREFIX = 'bulwark:breaker:probe:';
const SCAN_COUNT = 200;
/** The open states are re-read this often (and after every reconnect of the subscriber), whatever was heard. */
export const RESYNC_INTERVAL_MS = 5000;

/**
 * Takes the probe permit unless another instance holds it; renews it when this instance already does
 * (a claim answered too late to be taken may have left it there). KEYS[1] permit, ARGV owner and TTL.
 */
const CLAIM_PROBE = `
local owner = redis.call('GET', KEYS[1])
if owner == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`;

/**
 * The breakers' shared state in Redis, which is the truth every instance re-reads: one key per open
 * breaker that expires when its open period ends (so nothing outlives its use, and a restart never
 * replays an outage that is over), a probe permit per half-open round, and a pub/sub channel for the
 * fast path. Pub/sub drops notices during a reconnect: the resync (a {@link readOpen}) is the cluster's
 * poll behind the channel, run after each reconnect of the subscriber and every {@link RESYNC_INTERVAL_MS}.
 */
@Injectable()
export class BreakerStateStore {
  private readonly logger = new Logger(BreakerStateStore.name);
  private readonly noticeListeners: ((notice: BreakerNotice) => void)[] = [];
  private readonly resyncListeners: (() => Promise<void>)[] = [];

  constructor(
    private readonly redis: RedisService,
    private readonly identity: ClusterIdentity,
    private readonly signals: ClusterSignals,
  ) {}

  /** Id of this process in notices and permits. */
  get instanceId(): string {
    return this.identity.id;
  }

  /** Notices of other instances, parsed and validated. */
  onNotice(listener: (notice: BreakerNotice) => void): void {
    this.noticeListeners.push(listener);
  }

  /**
   * Re-reads the shared state (notices may have been lost): after each reconnect of the subscriber and
   * every {@link RESYNC_INTERVAL_MS}. A rejection means Redis did not answer; it is tried again soon.
   */
  onResync(listener: () => Promise<void>): void {
    this.resyncListeners.push(listener);
  }

  async start(): Promise<void> {
    this.signals.subscribe(
      CHANNEL,
      (payload) => {
        const notice = parseNotice(payload);
        if (!notice || notice.origin === this.instanceId) return;
        for (const listener of this.noticeListeners) listener(notice);
      },
      { everyMs: RESYNC_INTERVAL_MS, run: () => Promise.all(this.resyncListeners.map((listener) => listener())) },
    );
  }

  /** Stores and announces an open period of `remainingMs`; false when Redis did not take it. */
  writeOpen(key: string, openEnded: boolean, cooldownMs: number, remainingMs: number): Promise<boolean> {
    const ttl = Math.max(1, Math.round(remainingMs));
    const payload = this.payload({ key, state: 'open', remainingMs: ttl, cooldownMs, openEnded });
    // A new open period ends any probe round: its permit goes with it.
    return this.exec(this.redis.client.multi().set(OPEN_PREFIX + key, payload, 'PX', ttl).del(PROBE_PREFIX + key).publish(CHANNEL, payload));
  }

  /** Removes the breaker's state and permit and announces the close; false when Redis did not take it. */
  writeClosed(key: string, openEnded: boolean, cooldownMs: number): Promise<boolean> {
    const payload = this.payload({ key, state: 'closed', remainingMs: 0, cooldownMs, openEnded });
    return this.exec(this.redis.client.multi().del(OPEN_PREFIX + key, PROBE_PREFIX + key).publish(CHANNEL, payload));
  }

  /** Atomically takes the half-open probe permit of `key` for `ttlMs`; true when this instance holds it. */
  async claimProbe(key: string, ttlMs: number): Promise<boolean> {
    const won = await this.redis.client.eval(CLAIM_PROBE, 1, PROBE_PREFIX + key, this.instanceId, String(Math.round(ttlMs)));
    return won === 1;
  }

  /** Whether Redis holds an open state for `key`. */
  async isOpen(key: string): Promise<boolean> {
    return (await this.redis.client.exists(OPEN_PREFIX + key)) === 1;
  }

  /** Every breaker open in Redis right now, with its time left. Throws when Redis does not answer. */
  async readOpen(): Promise<BreakerNotice[]> {
    const client = this.redis.client;
    const found: BreakerNotice[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${OPEN_PREFIX}*`, 'COUNT', SCAN_COUNT);
      cursor = next;
      if (keys.length === 0) continue;
      const batch = client.multi();
      for (const key of keys) batch.get(key).pttl(key);
      const replies = (await batch.exec()) ?? [];
      keys.forEach((redisKey, i) => {
        const value = replies[2 * i]?.[1] as string | null;
        const pttl = replies[2 * i + 1]?.[1] as number;
        const entry = parseOpenEntry(redisKey.slice(OPEN_PREFIX.length), value, pttl);
        if (entry) found.push(entry);
      });
    } while (cursor !== '0');
    return found;
  }

  private payload(notice: Omit<BreakerNotice, 'origin'>): string {
    return JSON.stringify({ ...notice, origin: this.instanceId });
  }

  private async exec(batch: ReturnType<Redis['multi']>): Promise<boolean> {
    if (this.redis.client.status !== 'ready') return false;
    try {
      await batch.exec();
      return true;
    } catch (error) {
      this.logger.warn(`breaker state write failed: ${(error as Error).message}`);
      return false;
    }
  }
}
