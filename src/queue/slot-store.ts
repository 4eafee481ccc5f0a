import type Redis from 'ioredis';
import type { Priority } from '../adaptive/graduated-rejection';
import { ADMIT, BIND, CLAIM, COMMIT, FIGURES, FORGET, RELEASE, RENEW } from './slot-scripts';
import { BAND } from './inference-job';

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
  /** A band's fair-share clock (virtual time and each client key's last finish tag). */
  fair(band: number): string;
  /** Waiting requests per client key (hash). */
  keyWaiting: string;
  /** The client key of each waiting job (hash). */
  jobKey: string;
}

/** Who queues a request, for fair share and the per-key queue cap. */
export interface QueueClient {
  /** Non-secret id of the client key. */
  id: string;
  weight: number;
  /** Most requests of this key waiting at once (0: no cap). */
  maxWaiting: number;
}

/** Fair-share units one request of weight 1 costs; a key of weight w pays FAIR_UNIT / w. */
export const FAIR_UNIT = 16;

export type AdmitResult =
  | { kind: 'fast'; inUse: number }
  | { kind: 'queued'; freeSlots: number; fairTag: number }
  | { kind: 'full'; waiting: number }
  | { kind: 'key_share'; keyWaiting: number }
  | { kind: 'duplicate' };

export interface SlotFigures {
  byPriority: Record<Priority, number>;
  inUse: number;
  /** Waiting requests per client key id. */
  byKey: Map<string, number>;
}

type Reply = number | number[];
type ScriptedRedis = Redis & Record<string, (...args: (string | number)[]) => Promise<Reply>>;

const SCRIPTS = {
  bulwarkAdmit: { numberOfKeys: 9, lua: ADMIT },
  bulwarkForget: { numberOfKeys: 3, lua: FORGET },
  bulwarkCommit: { numberOfKeys: 2, lua: COMMIT },
  bulwarkClaim: { numberOfKeys: 4, lua: CLAIM },
  bulwarkRelease: { numberOfKeys: 4, lua: RELEASE },
  bulwarkBind: { numberOfKeys: 6, lua: BIND },
  bulwarkRenew: { numberOfKeys: 2, lua: RENEW },
  bulwarkFigures: { numberOfKeys: 5, lua: FIGURES },
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
    client: QueueClient,
    limits: { maxQueue: number; maxConcurrent: number; leaseMs: number; fastLane: boolean; commitWindowMs: number },
  ): Promise<AdmitResult> {
    const k = this.keys;
    const band = BAND[priority];
    const cost = Math.max(1, Math.round(FAIR_UNIT / (client.weight > 0 ? client.weight : 1)));
    const [kind, figure, tag] = (await this.redis.bulwarkAdmit(
      k.slots, k.adding, k.prioritized, k.wait, k.job(id), k.commit(id), k.fair(band), k.keyWaiting, k.jobKey,
      band, id, limits.maxQueue, limits.maxConcurrent, limits.leaseMs, limits.fastLane ? 1 : 0, limits.commitWindowMs,
      client.id, cost, client.maxWaiting,
    )) as number[];
    if (kind === 1) return { kind: 'fast', inUse: figure };
    if (kind === 2) return { kind: 'queued', freeSlots: figure, fairTag: tag };
    if (kind === 3) return { kind: 'duplicate' };
    if (kind === 4) return { kind: 'key_share', keyWaiting: figure };
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

  /**
   * A worker took job `id` (of `priority`, fair-share tag `tag`) from the queue: drops its reservation and
   * its place in its key's count, moves the band's virtual time, and says whether it may run (committed;
   * its sync caller's instance alive).
   */
  async bind(id: string, priority: Priority, tag: number, origin: string | undefined): Promise<{ committed: boolean; originAlive: boolean }> {
    const k = this.keys;
    const [committed, alive] = (await this.redis.bulwarkBind(
      k.keyWaiting, k.jobKey, k.adding, k.commit(id), k.instances, k.fair(BAND[priority]),
      id, origin ?? '', tag,
    )) as number[];
    return { committed: committed === 1, originAlive: alive === 1 };
  }

  /** Confirms job `id`'s add: it may run for `ttlMs`. False when its commit window had lapsed. */
  async commit(id: string, ttlMs: number): Promise<boolean> {
    return ((await this.redis.bulwarkCommit(this.keys.adding, this.keys.commit(id), id, Math.max(1, Math.ceil(ttlMs)))) as number) === 1;
  }

  /** Forgets a job that left the queue before it started (or whose add failed). */
  async forget(id: string): Promise<void> {
    await this.redis.bulwarkForget(this.keys.keyWaiting, this.keys.jobKey, this.keys.adding, id);
  }

  /** Renews this instance's heartbeat and every lease it holds. */
  async renew(instanceId: string, leaseMs: number, leases: string[]): Promise<void> {
    await this.redis.bulwarkRenew(this.keys.slots, this.keys.instances, instanceId, leaseMs, ...leases);
  }

  /** Forgets this instance at once (clean shutdown), so its sync jobs are not waited for. */
  async forgetInstance(instanceId: string): Promise<void> {
    await this.redis.zrem(this.keys.instances, instanceId);
  }

  async figures(): Promise<SlotFigures> {
    const k = this.keys;
    const [high, normal, low, inUse, ...perKey] = (await this.redis.bulwarkFigures(k.slots, k.adding, k.prioritized, k.wait, k.keyWaiting)) as (number | string)[];
    const byKey = new Map<string, number>();
    for (let i = 0; i + 1 < perKey.length; i += 2) byKey.set(String(perKey[i]), Number(perKey[i + 1]));
    return { byPriority: { high: Number(high), normal: Number(normal), low: Number(low) }, inUse: Number(inUse), byKey };
  }
}
