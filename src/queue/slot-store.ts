import type Redis from 'ioredis';
import type { Priority } from '../adaptive/graduated-rejection';
import { ADMIT, BIND, CLAIM, COMMIT, FIGURES, RELEASE, RENEW } from './slot-scripts';
import { BULL_PRIORITY } from './inference-job';

/** The Redis keys of the queue core (see slot-scripts.ts for what each holds). */
export interface SlotKeys {
  slots: string;
  adding: string;
  prioritized: string;
  wait: string;
  instances: string;
  /** Key of a BullMQ job's hash. */
  job(id: string): string;
  /** A queued job may run only while this key exists (see slot-scripts.ts). */
  commit(id: string): string;
}

export type AdmitResult =
  | { kind: 'fast'; inUse: number }
  | { kind: 'queued'; freeSlots: number }
  | { kind: 'full'; waiting: number }
  | { kind: 'duplicate' };

export interface SlotFigures {
  byPriority: Record<Priority, number>;
  inUse: number;
}

type Reply = number | number[];
type ScriptedRedis = Redis & Record<string, (...args: (string | number)[]) => Promise<Reply>>;

const SCRIPTS = {
  bulwarkAdmit: { numberOfKeys: 6, lua: ADMIT },
  bulwarkCommit: { numberOfKeys: 2, lua: COMMIT },
  bulwarkClaim: { numberOfKeys: 4, lua: CLAIM },
  bulwarkRelease: { numberOfKeys: 4, lua: RELEASE },
  bulwarkBind: { numberOfKeys: 3, lua: BIND },
  bulwarkRenew: { numberOfKeys: 2, lua: RENEW },
  bulwarkFigures: { numberOfKeys: 4, lua: FIGURES },
};

/**
 * The queue core's Redis boundary: every call is one atomic script and one round trip. Holds no state
 * of its own; `SlotService` keeps this instance's leases.
 */
export class SlotStore {
  private readonly redis: ScriptedRedis;

  constructor(
    redis: Redis,
    private readonly keys: SlotKeys,
  ) {
    for (const [name, script] of Object.entries(SCRIPTS)) {
      if (!(name in redis)) redis.defineCommand(name, script);
    }
    this.redis = redis as ScriptedRedis;
  }

  /** Takes a slot at once (fast lane) or reserves a queue place for job `id`, atomically. */
  async admit(
    id: string,
    priority: Priority,
    limits: { maxQueue: number; maxConcurrent: number; leaseMs: number; fastLane: boolean; commitWindowMs: number },
  ): Promise<AdmitResult> {
    const k = this.keys;
    const [kind, figure] = (await this.redis.bulwarkAdmit(
      k.slots, k.adding, k.prioritized, k.wait, k.job(id), k.commit(id),
      BULL_PRIORITY[priority], id, limits.maxQueue, limits.maxConcurrent, limits.leaseMs, limits.fastLane ? 1 : 0, limits.commitWindowMs,
    )) as number[];
    if (kind === 1) return { kind: 'fast', inUse: figure };
    if (kind === 2) return { kind: 'queued', freeSlots: figure };
    if (kind === 3) return { kind: 'duplicate' };
    return { kind: 'full', waiting: figure };
  }

  /** A slot for the queue's head: `granted`, `busy` (every slot taken) or `empty` (nothing waits). */
  async claim(ticket: string, maxConcurrent: number, leaseMs: number): Promise<'granted' | 'busy' | 'empty'> {
    const k = this.keys;
    const result = (await this.redis.bulwarkClaim(k.slots, k.adding, k.prioritized, k.wait, ticket, maxConcurrent, leaseMs)) as number;
    return result === 1 ? 'granted' : result === 0 ? 'busy' : 'empty';
  }

  /** Frees `lease`; when something waits and `nextTicket` is given, that ticket holds the slot now. */
  async release(lease: string, nextTicket: string | undefined, maxConcurrent: number, leaseMs: number): Promise<{ handedOff: boolean; waiting: number }> {
    const k = this.keys;
    const [handedOff, waiting] = (await this.redis.bulwarkRelease(k.slots, k.adding, k.prioritized, k.wait, lease, nextTicket ?? '', maxConcurrent, leaseMs)) as number[];
    return { handedOff: handedOff === 1, waiting };
  }

  /** Drops job `id`'s reservation and says whether it may run (committed; its sync caller's instance alive). */
  async bind(id: string, origin: string | undefined): Promise<{ committed: boolean; originAlive: boolean }> {
    const k = this.keys;
    const [committed, alive] = (await this.redis.bulwarkBind(k.adding, k.commit(id), k.instances, id, origin ?? '')) as number[];
    return { committed: committed === 1, originAlive: alive === 1 };
  }

  /** Confirms job `id`'s add: it may run for `ttlMs`. False when its commit window had lapsed. */
  async commit(id: string, ttlMs: number): Promise<boolean> {
    return ((await this.redis.bulwarkCommit(this.keys.adding, this.keys.commit(id), id, Math.max(1, Math.ceil(ttlMs)))) as number) === 1;
  }

  /** Forgets a reservation whose add failed. */
  async unreserve(id: string): Promise<void> {
    await this.redis.zrem(this.keys.adding, id);
  }

  /** Renews this instance's heartbeat and every lease it holds. */
  async renew(instanceId: string, leaseMs: number, leases: string[]): Promise<void> {
    await this.redis.bulwarkRenew(this.keys.slots, this.keys.instances, instanceId, leaseMs, ...leases);
  }

  /** Forgets this instance at once (clean shutdown), so its sync jobs are not waited for. */
  async forget(instanceId: string): Promise<void> {
    await this.redis.zrem(this.keys.instances, instanceId);
  }

  async figures(): Promise<SlotFigures> {
    const k = this.keys;
    const [high, normal, low, inUse] = (await this.redis.bulwarkFigures(k.slots, k.adding, k.prioritized, k.wait)) as number[];
    return { byPriority: { high, normal, low }, inUse };
  }
}
