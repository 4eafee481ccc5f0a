import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Job, Queue } from 'bullmq';
import type { ChainableCommander, default as Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { ClusterIdentity } from '../cluster/cluster-identity';
import { ClusterLeases } from '../cluster/cluster-leases.service';
import { ClusterSignals } from '../cluster/cluster-signals.service';
import { LeaseGroup } from '../cluster/lease-group';
import { HEARTBEAT_KEY } from '../cluster/lease-scripts';
import { Listeners } from '../common/listeners';
import type { Priority } from '../common/priority';
import { queueConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { INFERENCE_QUEUE } from './inference-job';
import { AdmitResult, CommitResult, commitResult, defineSlotScripts, QueueClient, ReleaseResult, releaseResult, SlotFigures, SlotKeys, SlotStore } from './slot-store';

/** A command to run with a slot's release, in one MULTI on its own connection (see SlotService.releaseAfter). */
export interface ReleaseCompanion {
  /** A connection with the companion's command defined (BullMQ's worker connection). */
  client: Redis;
  /** Queues the command on a MULTI of `client`. */
  queue(transaction: ChainableCommander): void;
  /** Runs the command alone (until the connection is warm). */
  run(): Promise<unknown>;
}

/** Whoever runs queued work on this instance. */
export interface SlotTaker {
  /** Whether it can start one more job now. */
  canTake(): boolean;
  /** Runs the queue's head under `lease` (or gives the lease back when nothing is there). */
  take(lease: string): void;
}

const WAKE_CHANNEL = 'bulwark:queue:wake';
/** How often the poll behind the wake channel looks for waiting work nobody was woken for (a lapsed lease, a lost message). */
const WAKE_POLL_MS = 250;
/** The global slots' lease set. */
const SLOTS_KEY = 'bulwark:slots';

/** The Redis set of a client key's running leases (for keys with a concurrency cap). */
function keyRunningSet(clientId: string): string {
  return `bulwark:slots:key:${clientId}`;
}

/**
 * The global slots (MAX_CONCURRENT_REQUESTS across every instance) as leases in Redis, kept by the
 * cluster's lease mechanism: renewed by its one loop, a crashed instance's leases lapse after
 * QUEUE_LOCK_MS and its slots come back. Workers are woken when work may be waiting for them, through the
 * cluster's wake channel and the poll behind it (a lost message, a lapsed lease).
 */
@Injectable()
export class SlotService implements OnApplicationBootstrap {
  private readonly logger = new Logger(SlotService.name);
  private readonly store: SlotStore;
  /** The queue core's Redis keys, for scripts of other modules that must see what waits (the batch runner's). */
  readonly keys: SlotKeys;
  /** This instance's slot leases, each in the global set and, when it counts there, its client key's set. */
  private readonly slotLeases: LeaseGroup;
  private readonly wakeListeners = new Listeners<[]>('queue wake', this.logger);
  /** Listeners that the wake channel's poll calls too, each when its own check says work waits. */
  private readonly polledWakes = new Set<{ listener: () => void; waiting: () => boolean }>();
  private readonly freedListeners = new Listeners<[]>('slot freed', this.logger);
  private readonly queuedListeners = new Listeners<[string]>('job queued', this.logger);
  private taker?: SlotTaker;
  /** BullMQ connections that have run their scripts and ours since they last connected (all loaded). */
  private readonly warm = new Set<Redis>();
  private readonly watched = new Set<Redis>();

  constructor(
    @InjectQueue(INFERENCE_QUEUE) private readonly queue: Queue,
    @Inject(queueConfig.KEY) private readonly config: ConfigType<typeof queueConfig>,
    redis: RedisService,
    private readonly identity: ClusterIdentity,
    private readonly leases: ClusterLeases,
    private readonly signals: ClusterSignals,
  ) {
    this.slotLeases = leases.group({ name: 'slots', ttlMs: config.lockMs, reassert: true });
    const keys = queue.keys;
    this.keys = {
      slots: SLOTS_KEY,
      adding: 'bulwark:slots:adding',
      instances: HEARTBEAT_KEY,
      prioritized: keys.prioritized,
      wait: keys.wait,
      jobPrefix: queue.toKey(''),
      commit: (id) => `bulwark:jobs:commit:${id}`,
      fair: (band) => `bulwark:fair:${band}`,
      keyWaiting: 'bulwark:keys:waiting',
      jobKey: 'bulwark:keys:job',
      delayed: keys.delayed,
      keyRunning: (clientId) => keyRunningSet(clientId),
      priced: 'bulwark:queue:priced',
      pricedJob: 'bulwark:queue:priced:job',
    };
    this.store = new SlotStore(redis.client, this.keys);
  }

  onApplicationBootstrap(): void {
    this.signals.subscribe(WAKE_CHANNEL, () => this.wakeListeners.emit(), { everyMs: WAKE_POLL_MS, run: () => this.pollWakes() });
  }

  /**
   * Takes a free slot for `id` at once when nothing of its priority or higher waits (fast lane), else
   * reserves a queue place for it; both against the exact figures in Redis.
   */
  async admit(
    id: string,
    priority: Priority,
    client: QueueClient,
    options: { fastLane: boolean; commitWindowMs: number; mayExist: boolean; expectedServiceMs?: number },
  ): Promise<AdmitResult> {
    const result = await this.store.admit(id, priority, client, {
      ...options,
      maxQueue: this.config.maxQueueSize,
      maxConcurrent: this.config.maxConcurrent,
      leaseMs: this.config.lockMs,
    });
    if (result.kind === 'fast') this.slotLeases.hold(id, SLOTS_KEY, ...(client.maxRunning > 0 ? [keyRunningSet(client.id)] : []));
    return result;
  }

  /** A slot for the queue's head, as a lease id; none when no slot is free (`empty`: nothing waits). */
  async claim(): Promise<{ lease?: string; empty: boolean }> {
    const ticket = randomUUID();
    const result = await this.store.claim(ticket, this.config.maxConcurrent, this.config.lockMs);
    if (result !== 'granted') return { empty: result === 'empty' };
    this.slotLeases.hold(ticket, SLOTS_KEY);
    return { lease: ticket, empty: false };
  }

  /**
   * Gives `lease` back. When work waits and this instance's worker can run more, the slot goes straight
   * to it as a new lease for the queue's head (no round trip through the wake channel); otherwise every
   * instance's workers are woken to take it.
   */
  async release(lease: string): Promise<void> {
    const sets = this.slotLeases.drop(lease);
    if (!sets) return;
    const keySet = sets.find((set) => set !== SLOTS_KEY);
    const next = this.taker?.canTake() ? randomUUID() : undefined;
    try {
      this.afterRelease(await this.store.release(lease, keySet, next, this.config.maxConcurrent, this.config.lockMs), next);
    } catch (error) {
      // Not renewed any more, the lease lapses by itself within QUEUE_LOCK_MS.
      this.logger.debug(`slot release failed: ${(error as Error).message}`);
    }
  }

  /**
   * {@link release}, in one round trip with `finish` (BullMQ's completion of the job that held the lease):
   * both go in one MULTI on `finish`'s connection, `finish` first. Returns `finish`'s reply (an error for
   * a failed command). While that connection has not run both scripts since it connected, they go one
   * after the other instead (a script Redis does not know yet would be sent again outside the MULTI).
   */
  async releaseAfter(lease: string, finish: ReleaseCompanion): Promise<unknown> {
    if (!this.slotLeases.has(lease) || !this.warm.has(finish.client)) {
      const reply = await finish.run().then(
        (value) => value,
        (error: unknown) => error,
      );
      await this.release(lease);
      this.warmUp(finish.client);
      return reply;
    }
    const sets = this.slotLeases.drop(lease) ?? [];
    const keySet = sets.find((set) => set !== SLOTS_KEY);
    const next = this.taker?.canTake() ? randomUUID() : undefined;
    const transaction = finish.client.multi();
    finish.queue(transaction);
    this.store.releaseIn(transaction, lease, keySet, next, this.config.maxConcurrent, this.config.lockMs);
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await transaction.exec();
    } catch (error) {
      this.logger.debug(`slot release failed: ${(error as Error).message}`);
      return error;
    }
    const [finished, released] = replies ?? [];
    if (released && !released[0]) this.afterRelease(releaseResult(released[1]), next);
    return !finished ? new Error('not executed') : (finished[0] ?? finished[1]);
  }

  private afterRelease({ handedOff, waiting }: ReleaseResult, next: string | undefined): void {
    if (handedOff && next) {
      this.slotLeases.hold(next, SLOTS_KEY);
      this.taker?.take(next);
    } else if (waiting > 0) {
      this.wakeWorkers();
    } else {
      this.freedListeners.emit();
    }
  }

  /** Marks `client` as able to run the slot scripts in a MULTI, until it reconnects. */
  private warmUp(client: Redis): void {
    if (this.warm.has(client)) return;
    if (!this.watched.has(client)) {
      this.watched.add(client);
      defineSlotScripts(client);
      client.on('ready', () => this.warm.delete(client));
    }
    this.warm.add(client);
  }

  /**
   * Holds `lease`, taken in Redis by another module's script (the batch runner's), as one of this
   * instance's: renewed with the others and given back through {@link release}, which hands the slot to
   * waiting work.
   */
  adopt(lease: string): void {
    this.slotLeases.hold(lease, SLOTS_KEY);
  }

  /** Called when this instance gave a slot back and nothing waited for it (idle capacity). */
  onFreed(listener: () => void): void {
    this.freedListeners.add(listener);
  }

  /** The worker of this instance, to which freed slots are handed while work waits. */
  setTaker(taker: SlotTaker): void {
    this.taker = taker;
  }

  /**
   * A worker took job `id` (of `priority`, fair-share tag `tag`) from the queue under `lease`: may it run?
   * For a key with a concurrency cap, the lease counts against the key from here on (unless it is at its
   * cap: then the worker puts the job back for a moment).
   */
  async bind(id: string, priority: Priority, tag: number, origin: string | undefined, lease: string, client: { id: string; maxRunning: number }) {
    const verdict = await this.store.bind(id, priority, tag, origin, { clientId: client.id, maxRunning: client.maxRunning, lease, leaseMs: this.config.lockMs });
    if (client.maxRunning > 0 && !verdict.keyAtCap) this.slotLeases.addSet(lease, keyRunningSet(client.id));
    return verdict;
  }

  /**
   * Adds `job` (its queue place reserved by {@link admit}) and confirms it in one round trip: BullMQ's
   * add and the commit in one MULTI on BullMQ's connection, so the commit sees the add landed. `late`:
   * the commit window had lapsed, the job must not run (workers drop it). While that connection has not
   * run both scripts since it connected, they go one after the other instead: a script Redis does not
   * know yet would fail inside the MULTI and be sent again outside it, after the commit.
   */
  async addCommitted(job: Job, ttlMs: number): Promise<CommitResult> {
    const id = String(job.id);
    const client = (await this.queue.backend.client) as unknown as Redis;
    if (!this.warm.has(client)) {
      await job.addJob(client as never);
      const committed = await this.store.commit(id, ttlMs);
      this.warmUp(client);
      if (committed === 'committed') this.queuedListeners.emit(id);
      return committed;
    }
    const transaction = client.multi();
    void job.addJob(transaction as never).catch(() => undefined);
    this.store.commitIn(transaction, id, ttlMs);
    const replies = await transaction.exec();
    const [added, committed] = replies ?? [];
    if (!added || added[0]) throw added?.[0] ?? new Error('the add was not executed');
    if (!committed || committed[0]) throw committed?.[0] ?? new Error('the commit was not executed');
    if (typeof added[1] === 'number' && added[1] < 0) throw new Error(`BullMQ refused the add (${added[1]})`);
    const result = commitResult(committed[1]);
    if (result === 'committed') this.queuedListeners.emit(id);
    return result;
  }

  /** Called with a job's id when it was queued here (its add confirmed): it may be waiting for a slot that work below it holds. */
  onQueued(listener: (id: string) => void): void {
    this.queuedListeners.add(listener);
  }

  /** Job `id` left the queue before it started (removed, or its add failed). */
  forget(id: string): Promise<void> {
    return this.store.forget(id);
  }

  figures(): Promise<SlotFigures> {
    return this.store.figures();
  }

  /** Slots held by this instance. */
  get held(): number {
    return this.slotLeases.size;
  }

  /**
   * Called when work may be waiting (a job was queued or a slot freed elsewhere). With `waiting`, the
   * poll behind the wake channel calls it too whenever `waiting()` says work waits, so a lost message or a
   * lapsed lease never leaves work waiting for nobody.
   */
  onWake(listener: () => void, options: { waiting?: () => boolean } = {}): void {
    this.wakeListeners.add(listener);
    if (options.waiting) this.polledWakes.add({ listener, waiting: options.waiting });
  }

  /** Called on every tick of the cluster's lease renewal (e.g. to extend the BullMQ locks of the jobs running here). */
  onRenew(listener: () => Promise<void>): void {
    this.leases.onRenew(listener);
  }

  /** Tells every instance's workers that work may be waiting for a slot. */
  wakeWorkers(): void {
    this.wakeListeners.emit();
    void this.signals.publish(WAKE_CHANNEL, this.identity.id);
  }

  private pollWakes(): void {
    for (const { listener, waiting } of this.polledWakes) {
      try {
        if (waiting()) listener();
      } catch (error) {
        this.logger.warn(`a queue wake poll failed: ${(error as Error).message}`);
      }
    }
  }
}
