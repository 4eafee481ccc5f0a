import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type Redis from 'ioredis';
import { Listeners } from '../common/listeners';
import { queueConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { ClusterIdentity } from './cluster-identity';
import { LeaseGroup, LeaseGroupOptions } from './lease-group';
import { COUNT_LIVE, FORGET_INSTANCE, HEARTBEAT_KEY, RENEW_LEASES } from './lease-scripts';

/** The renewal loop never runs more often than this. */
const MIN_RENEW_MS = 200;

type LeaseScripts = Redis & {
  bulwarkRenewLeases(numKeys: number, ...args: (string | number)[]): Promise<number>;
  bulwarkForgetInstance(numKeys: number, ...args: (string | number)[]): Promise<number>;
  bulwarkCountLive(numKeys: number, ...keys: string[]): Promise<number[]>;
};

/**
 * The one lease mechanism of this instance: every lease it holds (global slots, per-key running sets,
 * upstream permits), grouped by kind, and its heartbeat, renewed by one loop in one round trip per tick,
 * a third of the shortest lease's life. Listeners run on every tick (the worker extends its BullMQ job
 * locks there). A crashed instance's heartbeat and leases lapse by themselves (QUEUE_LOCK_MS for the
 * heartbeat and slots, their own TTL for other kinds); a clean shutdown removes them at once.
 */
@Injectable()
export class ClusterLeases implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ClusterLeases.name);
  private readonly groups: LeaseGroup[] = [];
  private readonly renewListeners = new Listeners<[]>('lease renewal', this.logger);
  private readonly heartbeatMs: number;
  private timer?: NodeJS.Timeout;
  private renewing = false;
  private defined = false;

  constructor(
    private readonly redis: RedisService,
    private readonly identity: ClusterIdentity,
    @Inject(queueConfig.KEY) config: Pick<ConfigType<typeof queueConfig>, 'lockMs'>,
  ) {
    this.heartbeatMs = config.lockMs;
  }

  /** Starts bookkeeping a kind of lease; its leases are renewed from now on. */
  group(options: LeaseGroupOptions): LeaseGroup {
    const group = new LeaseGroup(options, this.identity.id);
    this.groups.push(group);
    if (this.timer) this.schedule();
    return group;
  }

  /** Called on every renewal tick, after the round trip. Returns the function that removes it. */
  onRenew(listener: () => unknown): () => void {
    return this.renewListeners.add(listener);
  }

  /** How often the loop renews: a third of the shortest life of the heartbeat or any kind of lease. */
  get renewEveryMs(): number {
    const shortest = Math.min(this.heartbeatMs, ...this.groups.map((g) => g.options.ttlMs));
    return Math.max(MIN_RENEW_MS, Math.floor(shortest / 3));
  }

  async onApplicationBootstrap(): Promise<void> {
    // The heartbeat is there before this instance queues anything that names it as the origin.
    await this.tick();
    this.schedule();
  }

  /** Stops the loop and forgets this instance's heartbeat and leases at once (they would lapse anyway). */
  async beforeApplicationShutdown(): Promise<void> {
    this.stop();
    if (this.redis.client.status !== 'ready') return;
    const keys: string[] = [HEARTBEAT_KEY];
    const args: string[] = [this.identity.id];
    for (const group of this.groups) {
      for (const [set, members] of group.bySet()) {
        keys.push(set);
        args.push(String(members.length), ...members);
      }
    }
    await this.scripts.bulwarkForgetInstance(keys.length, ...keys, ...args).catch(() => undefined);
  }

  /** Stops renewing: this instance's heartbeat and leases lapse as a crashed instance's would. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Renews the heartbeat and every lease held here in one round trip. Rejects when Redis did not take
   * it (the loop logs that at debug level: the connection's outage line says the rest).
   */
  async renew(): Promise<void> {
    const keys: string[] = [HEARTBEAT_KEY];
    const args: (string | number)[] = [this.identity.id, this.heartbeatMs];
    for (const group of this.groups) {
      const { ttlMs, reassert, setTtlMs } = group.options;
      for (const [set, members] of group.bySet()) {
        keys.push(set);
        args.push(ttlMs, reassert ? 1 : 0, setTtlMs ?? 0, members.length, ...members);
      }
    }
    await this.scripts.bulwarkRenewLeases(keys.length, ...keys, ...args);
  }

  /** The live leases in each of `sets` (Redis time decides), in one round trip. */
  async countLive(sets: readonly string[]): Promise<number[]> {
    if (sets.length === 0) return [];
    return (await this.scripts.bulwarkCountLive(sets.length, ...sets)).map(Number);
  }

  private schedule(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.tick(), this.renewEveryMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      await this.renew();
    } catch (error) {
      // Not renewed this time: the next tick tries again well within the shortest lease's life.
      this.logger.debug(`lease renewal failed: ${(error as Error).message}`);
    } finally {
      this.renewing = false;
    }
    this.renewListeners.emit();
  }

  private get scripts(): LeaseScripts {
    const client = this.redis.client;
    if (!this.defined && !('bulwarkRenewLeases' in client)) {
      client.defineCommand('bulwarkRenewLeases', { lua: RENEW_LEASES });
      client.defineCommand('bulwarkForgetInstance', { lua: FORGET_INSTANCE });
      client.defineCommand('bulwarkCountLive', { lua: COUNT_LIVE });
    }
    this.defined = true;
    return client as LeaseScripts;
  }
}
