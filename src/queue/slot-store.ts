import type { ChainableCommander, default as Redis } from 'ioredis';
import type { Priority } from '../common/priority';
import { ADMIT, BIND, CLAIM, COMMIT, FIGURES, FORGET, RELEASE } from './slot-scripts';
import { BAND } from './inference-job';
import type { AdmittedClient } from './admission';

/** The Redis keys of the queue core (see slot-scripts.ts for what each holds). */
export interface SlotKeys {
  slots: string;
  adding: string;
  prioritized: string;
  wait: string;
  /** The cluster's heartbeats (member: instance id, score: expiry), read to tell whether a job's origin lives. */
  instances: string;
  /** BullMQ's job key prefix (`queue.toKey('')`): a job's hash is this prefix and its id. */
  jobPrefix: string;
  /** A queued job may run only while this key exists (see slot-scripts.ts). */
  commit(id: string): string;
  /** A band's fair-share clock (virtual time and each client key's last finish tag). */
  fair(band: number): string;
  /** Waiting requests per client key (hash). */
  keyWaiting: string;
  /** The client key of each waiting job (hash). */
  jobKey: string;
  /** BullMQ's delayed jobs: those put back for a moment because their key was at its concurrency cap. */
  delayed: string;
  /** Leases of a client key's running requests (only for keys with a concurrency cap). */
  keyRunning(clientId: string): string;
  /** Expected service ms of the waiting requests per band, and how many are priced (hash). */
  priced: string;
  /** Each waiting job's `<band>:<expected ms>` (hash). */
  pricedJob: string;
}

/** Who queues a request, for fair share and the per-key caps. */
export type QueueClient = AdmittedClient;

/** A key that never exists: where a lease that counts against no client key's cap is "removed" from. */
const NO_KEY_SET = 'bulwark:slots:key:-none-';

/** Fair-share units one request of weight 1 costs; a key of weight w pays FAIR_UNIT / w. */
export const FAIR_UNIT = 16;

export type AdmitResult =
  | { kind: 'fast'; inUse: number }
  | { kind: 'queued'; freeSlots: number; fairTag: number }
  | { kind: 'full'; waiting: number }
  | { kind: 'key_share'; keyWaiting: number }
  | { kind: 'duplicate' };

/** The waiting requests of one band that carry an expected service time: their sum, and how many. */
export interface PricedWaiting {
  ms: number;
  count: number;
}

export interface SlotFigures {
  byPriority: Record<Priority, number>;
  /** Per band, the waiting requests priced by their own expected service time. */
  priced: Record<Priority, PricedWaiting>;
  inUse: number;
  /** Jobs put back for a moment because their key was at its concurrency cap (they wait too). */
  putBack: number;
  /** Waiting requests per client key id. */
  byKey: Map<string, number>;
}

type Reply = number | number[];

export type CommitResult = 'committed' | 'late' | 'missing';

export interface ReleaseResult {
  /** The slot went straight to the ticket given for the queue's head. */
  handedOff: boolean;
  /** Requests waiting for a slot. */
  waiting: number;
}

/** The reply of RELEASE as what it means. */
export function releaseResult(reply: unknown): ReleaseResult {
  const [handedOff, waiting] = Array.isArray(reply) ? (reply as number[]) : [0, 0];
  return { handedOff: handedOff === 1, waiting: Number(waiting) };
}

/** The reply of COMMIT as what it means. */
export function commitResult(reply: unknown): CommitResult {
  return reply === 1 ? 'committed' : reply === 0 ? 'late' : 'missing';
}

/** Defines the queue core's scripts on a connection (once): on the state client, and on BullMQ's for adds. */
export function defineSlotScripts(redis: Redis): void {
  for (const [name, script] of Object.entries(SCRIPTS)) {
    if (!(name in redis)) redis.defineCommand(name, script);
  }
}
type ScriptedRedis = Redis & Record<string, (...args: (string | number)[]) => Promise<Reply>>;

const SCRIPTS = {
  bulwarkAdmit: { numberOfKeys: 13, lua: ADMIT },
  bulwarkForget: { numberOfKeys: 6, lua: FORGET },
  bulwarkCommit: { numberOfKeys: 3, lua: COMMIT },
  bulwarkClaim: { numberOfKeys: 5, lua: CLAIM },
  bulwarkRelease: { numberOfKeys: 6, lua: RELEASE },
  bulwarkBind: { numberOfKeys: 9, lua: BIND },
  bulwarkFigures: { numberOfKeys: 7, lua: FIGURES },
};

/**
 * The queue core's Redis boundary: every call is one atomic script and one round trip. Holds no state
 * of its own; `SlotService` keeps this instance's leases (in the cluster's lease mechanism, which renews them).
 */
export class SlotStore {
  private readonly redis: ScriptedRedis;

  constructor(
    redis: Redis,
    private readonly keys: SlotKeys,
  ) {
    defineSlotScripts(redis);
    this.redis = redis as ScriptedRedis;
  }

  /** Takes a slot at once (fast lane) or reserves a queue place for job `id`, atomically. */
  async admit(
    id: string,
    priority: Priority,
    client: QueueClient,
    limits: { maxQueue: number; maxConcurrent: number; leaseMs: number; fastLane: boolean; commitWindowMs: number; mayExist: boolean; expectedServiceMs?: number },
  ): Promise<AdmitResult> {
    const k = this.keys;
    const band = BAND[priority];
    const cost = Math.max(1, Math.round(FAIR_UNIT / (client.weight > 0 ? client.weight : 1)));
    const expected = limits.expectedServiceMs;
    const [kind, figure, tag] = (await this.redis.bulwarkAdmit(
      k.slots, k.adding, k.prioritized, k.wait, k.jobPrefix + id, k.commit(id), k.fair(band), k.keyWaiting, k.jobKey, k.delayed, k.keyRunning(client.id), k.priced, k.pricedJob,
      band, id, limits.maxQueue, limits.maxConcurrent, limits.leaseMs, limits.fastLane ? 1 : 0, limits.commitWindowMs,
      client.id, cost, client.maxWaiting, client.maxRunning, limits.mayExist ? 1 : 0,
      expected !== undefined && Number.isFinite(expected) && expected >= 0 ? Math.round(expected) : '', k.jobPrefix,
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
    const result = (await this.redis.bulwarkClaim(k.slots, k.adding, k.prioritized, k.wait, k.delayed, ticket, maxConcurrent, leaseMs, k.jobPrefix)) as number;
    return result === 1 ? 'granted' : result === 0 ? 'busy' : 'empty';
  }

  /**
   * Frees `lease` (and its place in `keySet`, the running leases of its client key, if it counts there);
   * when something waits and `nextTicket` is given, that ticket holds the slot now.
   */
  async release(lease: string, keySet: string | undefined, nextTicket: string | undefined, maxConcurrent: number, leaseMs: number): Promise<ReleaseResult> {
    return releaseResult(await this.redis.bulwarkRelease(...this.releaseArgs(lease, keySet, nextTicket, maxConcurrent, leaseMs)));
  }

  /** Queues {@link release} on `transaction` (a MULTI of a connection the scripts are defined on); read its reply with {@link releaseResult}. */
  releaseIn(transaction: ChainableCommander, lease: string, keySet: string | undefined, nextTicket: string | undefined, maxConcurrent: number, leaseMs: number): void {
    (transaction as unknown as Record<string, (...args: (string | number)[]) => unknown>).bulwarkRelease(...this.releaseArgs(lease, keySet, nextTicket, maxConcurrent, leaseMs));
  }

  private releaseArgs(lease: string, keySet: string | undefined, nextTicket: string | undefined, maxConcurrent: number, leaseMs: number): (string | number)[] {
    const k = this.keys;
    return [k.slots, k.adding, k.prioritized, k.wait, k.delayed, keySet ?? NO_KEY_SET, lease, nextTicket ?? '', maxConcurrent, leaseMs, keySet ? 1 : 0, k.jobPrefix];
  }

  /**
   * A worker took job `id` (of `priority`, fair-share tag `tag`) from the queue: drops its reservation and
   * its place in its key's count, moves the band's virtual time, and says whether it may run (committed;
   * its sync caller's instance alive).
   */
  async bind(
    id: string,
    priority: Priority,
    tag: number,
    origin: string | undefined,
    keyCap: { clientId: string; maxRunning: number; lease: string; leaseMs: number },
  ): Promise<{ committed: boolean; originAlive: boolean; keyAtCap: boolean }> {
    const k = this.keys;
    const [committed, alive, atCap] = (await this.redis.bulwarkBind(
      k.keyWaiting, k.jobKey, k.adding, k.commit(id), k.instances, k.fair(BAND[priority]), k.keyRunning(keyCap.clientId), k.priced, k.pricedJob,
      id, origin ?? '', tag, keyCap.maxRunning, keyCap.lease, keyCap.leaseMs,
    )) as number[];
    return { committed: committed === 1, originAlive: alive === 1, keyAtCap: atCap === 1 };
  }

  /**
   * Confirms job `id`'s add: it may run for `ttlMs`. `late` when its commit window had lapsed (it must
   * not run), `missing` when the job is not there.
   */
  async commit(id: string, ttlMs: number): Promise<CommitResult> {
    return commitResult((await this.redis.bulwarkCommit(...this.commitArgs(id, ttlMs))) as number);
  }

  /**
   * Queues job `id`'s commit on `transaction` (a MULTI of a connection the scripts are defined on), right
   * after its add: one round trip for both. Read its reply with {@link commitResult}.
   */
  commitIn(transaction: ChainableCommander, id: string, ttlMs: number): void {
    (transaction as unknown as Record<string, (...args: (string | number)[]) => unknown>).bulwarkCommit(...this.commitArgs(id, ttlMs));
  }

  private commitArgs(id: string, ttlMs: number): (string | number)[] {
    return [this.keys.adding, this.keys.commit(id), this.keys.jobPrefix + id, id, Math.max(1, Math.ceil(ttlMs))];
  }

  /** Forgets a job that left the queue before it started (or whose add failed). */
  async forget(id: string): Promise<void> {
    const k = this.keys;
    await this.redis.bulwarkForget(k.keyWaiting, k.jobKey, k.adding, k.priced, k.pricedJob, k.commit(id), id);
  }

  async figures(): Promise<SlotFigures> {
    const k = this.keys;
    const reply = (await this.redis.bulwarkFigures(k.slots, k.adding, k.prioritized, k.wait, k.keyWaiting, k.delayed, k.priced, k.jobPrefix)) as (number | string)[];
    const [high, normal, low, inUse, putBack, msH, nH, msN, nN, msL, nL] = reply.slice(0, 11).map(Number);
    const perKey = reply.slice(11);
    const byKey = new Map<string, number>();
    for (let i = 0; i + 1 < perKey.length; i += 2) byKey.set(String(perKey[i]), Number(perKey[i + 1]));
    return {
      byPriority: { high, normal, low },
      priced: { high: { ms: msH, count: nH }, normal: { ms: msN, count: nN }, low: { ms: msL, count: nL } },
      inUse,
      putBack,
      byKey,
    };
  }
}
