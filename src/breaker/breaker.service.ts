import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { Clock } from '../common/clock';
import { Listeners } from '../common/listeners';
import { breakerConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { BreakerSnapshot, BreakerState, CircuitBreaker, GrantedPermit } from './circuit-breaker';

const CHANNEL = 'bulwark:breaker:events';
const STATE_HASH = 'bulwark:breaker:state';
const STATES: ReadonlySet<string> = new Set<BreakerState>(['closed', 'open', 'half_open']);

/**
 * Most breakers kept per open-ended upstream (one configured without a model list, such as a single
 * UPSTREAM_URL), whose model names come from clients: beyond it, models share the upstream's
 * {@link OVERFLOW_MODEL} breaker.
 */
export const MAX_OPEN_ENDED_BREAKERS = 32;
/** Model part of the key of the breaker shared by an open-ended upstream's models beyond the cap. */
export const OVERFLOW_MODEL = '*';

interface PublishedTransition {
  key: string;
  state: BreakerState;
  openedAt: number | null;
  cooldownMs: number;
  origin: string;
}

export interface BreakerView extends BreakerSnapshot {
  key: string;
  upstream: string;
  model: string;
}

/**
 * One granted call, to hand back to exactly one of {@link BreakerService.onSuccess},
 * {@link BreakerService.onFailure} or {@link BreakerService.release}. It remembers the breaker that
 * granted it, so its outcome lands there even if the key would resolve elsewhere by then.
 */
export class BreakerLease {
  constructor(
    readonly key: string,
    readonly permit: GrantedPermit,
    /** @internal */ readonly breaker: CircuitBreaker,
  ) {}

  get probe(): boolean {
    return this.permit.probe;
  }
}

export type BreakerAnswer = { allowed: true; lease: BreakerLease } | { allowed: false; key: string; retryInMs: number };

/** `upstream:model`; the upstream name cannot hold a colon, so the first colon splits them. */
export function breakerKey(upstream: string, model: string): string {
  return `${upstream}:${model}`;
}

/**
 * One circuit breaker per upstream + model, created on first use. Local transitions are published
 * through Redis (a pub/sub notice plus a hash that new instances read at start), so every instance
 * opens and closes together; the hot path only reads the in-memory breaker.
 *
 * Model names of an open-ended upstream come from clients, so their breakers are bounded: up to
 * {@link MAX_OPEN_ENDED_BREAKERS} per upstream, then a closed breaker with an empty window (it knows
 * nothing worth keeping) gives up its place, and when none can, the model shares the upstream's
 * `upstream:*` breaker. Real models, which carry traffic, keep their own breakers; made-up names
 * (which the upstream refuses with a 404 that never counts) leave no trace once their window empties.
 */
@Injectable()
export class BreakerService implements OnApplicationBootstrap {
  private readonly logger = new Logger(BreakerService.name);
  private readonly breakers = new Map<string, CircuitBreaker>();
  /** Per open-ended upstream, the keys of the breakers its client-named models created. */
  private readonly openEndedKeys = new Map<string, Set<string>>();
  private readonly overflowWarned = new Set<string>();
  private readonly instanceId = randomUUID();
  private subscriber?: Redis;
  private readonly listeners = new Listeners<[BreakerView]>('breaker change', this.logger);

  constructor(
    @Inject(breakerConfig.KEY) private readonly config: ConfigType<typeof breakerConfig>,
    private readonly redis: RedisService,
    private readonly clock: Clock,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.subscriber = this.redis.create('breaker-subscriber', { enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.subscriber.on('message', (_channel: string, message: string) => this.applyPublished(message));
    // After a reconnect, pub/sub notices sent meanwhile are lost: re-read the shared state.
    this.subscriber.on('ready', () => void this.loadSharedState());
    await this.subscriber.subscribe(CHANNEL).catch((error: Error) => this.logger.warn(`breaker subscribe failed: ${error.message}`));
    await this.loadSharedState();
  }

  /** Subscribe to state changes of any breaker (local or remote). */
  onChange(listener: (view: BreakerView) => void): void {
    this.listeners.add(listener);
  }

  /**
   * Asks to call `model` on `upstream`. `openEnded` marks an upstream without a configured model
   * list, whose model names are bounded as the class comment says.
   */
  tryAcquire(upstream: string, model: string, openEnded = false): BreakerAnswer {
    const key = this.resolveKey(upstream, model, openEnded, true);
    const breaker = this.breakers.get(key) ?? this.create(key);
    const permit = breaker.tryAcquire();
    return permit.allowed ? { allowed: true, lease: new BreakerLease(key, permit, breaker) } : { allowed: false, key, retryInMs: permit.retryInMs };
  }

  onSuccess(lease: BreakerLease, durationMs: number): void {
    lease.breaker.onSuccess(durationMs, lease.permit);
  }

  /** Judges a failed call; an upstream's Retry-After may lengthen an open period, never shorten it. */
  onFailure(lease: BreakerLease, durationMs: number, retryAfterMs?: number): void {
    lease.breaker.onFailure(durationMs, lease.permit);
    // Only once the window has judged the upstream: one 429 alone must not open a breaker.
    if (retryAfterMs !== undefined && retryAfterMs > 0 && lease.breaker.state === 'open') lease.breaker.openFor(retryAfterMs);
  }

  /** Ends a call without judging the upstream (client error, cancellation). */
  release(lease: BreakerLease): void {
    lease.breaker.release(lease.permit);
  }

  /** Time until `model` on `upstream` may be tried again; 0 when it may be tried now. */
  retryInMs(upstream: string, model: string, openEnded = false): number {
    return this.breakers.get(this.resolveKey(upstream, model, openEnded, false))?.snapshot().retryInMs ?? 0;
  }

  isOpen(upstream: string, model: string, openEnded = false): boolean {
    return this.breakers.get(this.resolveKey(upstream, model, openEnded, false))?.state === 'open';
  }

  list(): BreakerView[] {
    return [...this.breakers.entries()].map(([key, breaker]) => this.view(key, breaker.snapshot()));
  }

  /** One breaker's view, or undefined when this instance has none under `key`. */
  get(key: string): BreakerView | undefined {
    const breaker = this.breakers.get(key);
    return breaker ? this.view(key, breaker.snapshot()) : undefined;
  }

  /**
   * Forces a breaker closed here and on every instance. A key this instance has no breaker for is
   * still reset when the shared state knows it (another instance opened it). Undefined for a key
   * no instance has published and this one does not hold.
   */
  async reset(key: string): Promise<BreakerView | undefined> {
    let breaker = this.breakers.get(key);
    if (!breaker) {
      const shared = await this.redis.client.hget(STATE_HASH, key);
      if (shared === null || !key.includes(':')) return undefined;
      breaker = this.create(key);
    }
    breaker.forceClose();
    this.logger.warn(`breaker ${key}: reset by an operator`);
    // Awaited, unlike ordinary transitions, so that the operator's answer means every instance was told.
    await this.share(key, 'closed', breaker.snapshot());
    return this.view(key, breaker.snapshot());
  }

  private create(key: string): CircuitBreaker {
    const breaker = new CircuitBreaker(
      {
        windowSize: this.config.windowSize,
        minCalls: this.config.minCalls,
        failureRatio: this.config.failureRatio,
        windowMs: this.config.windowMs,
        cooldownMs: this.config.cooldownMs,
        halfOpenProbes: this.config.halfOpenProbes,
        slowCallMs: this.config.slowCallMs,
        slowCallRatio: this.config.slowCallRatio,
      },
      this.clock,
    );
    breaker.onTransition = (from, to, snap) => this.publish(key, from, to, snap);
    this.breakers.set(key, breaker);
    return breaker;
  }

  /**
   * The key `model` on `upstream` is judged under. For an open-ended upstream at its cap, `claim`
   * frees the place of an idle breaker for it; without `claim` (read-only paths) nothing changes.
   */
  private resolveKey(upstream: string, model: string, openEnded: boolean, claim: boolean): string {
    const key = breakerKey(upstream, model);
    if (!openEnded || this.breakers.has(key)) return key;
    let keys = this.openEndedKeys.get(upstream);
    if (!keys) this.openEndedKeys.set(upstream, (keys = new Set()));
    if (keys.size < MAX_OPEN_ENDED_BREAKERS) {
      if (claim) keys.add(key);
      return key;
    }
    const idle = [...keys].find((k) => this.isIdle(k));
    if (idle !== undefined) {
      if (claim) {
        keys.delete(idle);
        this.breakers.delete(idle);
        keys.add(key);
      }
      return key;
    }
    if (claim && !this.overflowWarned.has(upstream)) {
      this.overflowWarned.add(upstream);
      this.logger.warn(`upstream ${upstream}: more than ${MAX_OPEN_ENDED_BREAKERS} models with recent outcomes; further models share breaker ${breakerKey(upstream, OVERFLOW_MODEL)}`);
    }
    return breakerKey(upstream, OVERFLOW_MODEL);
  }

  /** A closed breaker with no outcome in its window: dropping it loses nothing. */
  private isIdle(key: string): boolean {
    const snap = this.breakers.get(key)?.snapshot();
    return snap === undefined || (snap.state === 'closed' && snap.calls === 0);
  }

  private view(key: string, snap: BreakerSnapshot): BreakerView {
    const colon = key.indexOf(':');
    return { key, upstream: key.slice(0, colon), model: key.slice(colon + 1), ...snap };
  }

  private publish(key: string, from: BreakerState, to: BreakerState, snap: BreakerSnapshot): void {
    if (from !== to) this.logger.warn(`breaker ${key}: ${from} -> ${to} (failures ${snap.failures}/${snap.calls})`);
    void this.share(key, to, snap);
  }

  /** Writes a state to the shared hash, announces it, and tells local listeners. Never throws. */
  private async share(key: string, state: BreakerState, snap: BreakerSnapshot): Promise<void> {
    const message: PublishedTransition = { key, state, openedAt: snap.openedAt, cooldownMs: snap.cooldownMs, origin: this.instanceId };
    const payload = JSON.stringify(message);
    this.listeners.emit(this.view(key, snap));
    const client = this.redis.client;
    if (client.status !== 'ready') {
      this.logger.warn(`breaker ${key}: Redis is not ready; other instances will not hear of ${state}`);
      return;
    }
    try {
      await client.multi().hset(STATE_HASH, key, payload).publish(CHANNEL, payload).exec();
    } catch (error) {
      this.logger.warn(`breaker publish failed: ${(error as Error).message}`);
    }
  }

  private applyPublished(payload: string): void {
    let message: PublishedTransition;
    try {
      message = JSON.parse(payload) as PublishedTransition;
    } catch {
      return;
    }
    if (message.origin === this.instanceId || typeof message.key !== 'string' || !message.key.includes(':') || !STATES.has(message.state)) return;
    let breaker = this.breakers.get(message.key);
    // A close of a breaker this instance never had changes nothing: do not grow the map for it.
    if (!breaker && message.state === 'closed') return;
    breaker ??= this.create(message.key);
    breaker.applyRemote(message.state, message.openedAt, message.cooldownMs);
    this.listeners.emit(this.view(message.key, breaker.snapshot()));
  }

  private async loadSharedState(): Promise<void> {
    try {
      const entries = await this.redis.client.hgetall(STATE_HASH);
      for (const payload of Object.values(entries)) this.applyPublished(payload);
    } catch (error) {
      this.logger.warn(`breaker state load failed: ${(error as Error).message}`);
    }
  }
}
