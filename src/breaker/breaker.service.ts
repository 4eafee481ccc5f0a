import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { Clock } from '../common/clock';
import { breakerConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { BreakerPermit, BreakerSnapshot, BreakerState, CircuitBreaker } from './circuit-breaker';

const CHANNEL = 'bulwark:breaker:events';
const STATE_HASH = 'bulwark:breaker:state';

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

/** `upstream:model`; the upstream name cannot hold a colon, so the first colon splits them. */
export function breakerKey(upstream: string, model: string): string {
  return `${upstream}:${model}`;
}

/**
 * One circuit breaker per upstream + model, created on first use. Local transitions are published
 * through Redis (a pub/sub notice plus a hash that new instances read at start), so every instance
 * opens and closes together; the hot path only reads the in-memory breaker.
 */
@Injectable()
export class BreakerService implements OnApplicationBootstrap {
  private readonly logger = new Logger(BreakerService.name);
  private readonly breakers = new Map<string, CircuitBreaker>();
  private readonly instanceId = randomUUID();
  private subscriber?: Redis;
  private readonly listeners: ((view: BreakerView) => void)[] = [];

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
    this.listeners.push(listener);
  }

  private breaker(upstream: string, model: string): CircuitBreaker {
    const key = breakerKey(upstream, model);
    let breaker = this.breakers.get(key);
    if (!breaker) {
      breaker = new CircuitBreaker(
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
    }
    return breaker;
  }

  tryAcquire(upstream: string, model: string): BreakerPermit {
    return this.breaker(upstream, model).tryAcquire();
  }

  onSuccess(upstream: string, model: string, durationMs: number): void {
    this.breaker(upstream, model).onSuccess(durationMs);
  }

  onFailure(upstream: string, model: string, durationMs: number, retryAfterMs?: number): void {
    const breaker = this.breaker(upstream, model);
    breaker.onFailure(durationMs);
    // An upstream that says how long it needs may lengthen an open period, never shorten it.
    if (retryAfterMs !== undefined && breaker.state === 'open') breaker.openFor(retryAfterMs);
  }

  release(upstream: string, model: string): void {
    this.breaker(upstream, model).release();
  }

  /** Time until `upstream:model` may be tried again; 0 when it may be tried now. */
  retryInMs(upstream: string, model: string): number {
    const breaker = this.breakers.get(breakerKey(upstream, model));
    return breaker ? breaker.snapshot().retryInMs : 0;
  }

  isOpen(upstream: string, model: string): boolean {
    return this.breakers.get(breakerKey(upstream, model))?.state === 'open';
  }

  list(): BreakerView[] {
    return [...this.breakers.entries()].map(([key, breaker]) => this.view(key, breaker.snapshot()));
  }

  /** Forces a breaker closed here and on every instance. False when no such breaker exists. */
  reset(key: string): boolean {
    const breaker = this.breakers.get(key);
    if (!breaker) return false;
    if (breaker.state === 'closed') {
      breaker.forceClose();
      // Closed already here: no transition fires, but other instances may still hold it open.
      this.publish(key, 'closed', 'closed', breaker.snapshot());
    } else {
      breaker.forceClose(); // publishes through onTransition
    }
    return true;
  }

  private view(key: string, snap: BreakerSnapshot): BreakerView {
    const colon = key.indexOf(':');
    return { key, upstream: key.slice(0, colon), model: key.slice(colon + 1), ...snap };
  }

  private publish(key: string, from: BreakerState, to: BreakerState, snap: BreakerSnapshot): void {
    if (from !== to) this.logger.warn(`breaker ${key}: ${from} -> ${to} (failures ${snap.failures}/${snap.calls})`);
    const message: PublishedTransition = { key, state: to, openedAt: snap.openedAt, cooldownMs: snap.cooldownMs, origin: this.instanceId };
    const payload = JSON.stringify(message);
    const client = this.redis.client;
    if (client.status === 'ready') {
      client.multi().hset(STATE_HASH, key, payload).publish(CHANNEL, payload).exec().catch((error: Error) => {
        this.logger.warn(`breaker publish failed: ${error.message}`);
      });
    }
    for (const listener of this.listeners) listener(this.view(key, snap));
  }

  private applyPublished(payload: string): void {
    let message: PublishedTransition;
    try {
      message = JSON.parse(payload) as PublishedTransition;
    } catch {
      return;
    }
    if (message.origin === this.instanceId || typeof message.key !== 'string' || !message.key.includes(':')) return;
    const colon = message.key.indexOf(':');
    const breaker = this.breaker(message.key.slice(0, colon), message.key.slice(colon + 1));
    breaker.applyRemote(message.state, message.openedAt, message.cooldownMs);
    for (const listener of this.listeners) listener(this.view(message.key, breaker.snapshot()));
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
