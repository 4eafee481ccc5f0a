import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Priority } from '../common/priority';
import { estimateWaitMs, retryAfterMs, ServiceTimeEstimator } from './wait-estimator';
import { Clock } from '../common/clock';
import { Listeners } from '../common/listeners';
import { queueConfig } from '../config/sections';
import { SlotService } from './slot.service';
import type { PricedWaiting } from './slot-store';
import { SinceRefresh } from './since-refresh';

const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low'];

const REFRESH_MS = 200;
/** Older than this, the figures are not trusted: admission fails closed (Redis is probably away). */
const STALE_AFTER_MS = 3000;

export interface QueueSnapshot {
  waiting: number;
  byPriority: Record<Priority, number>;
  /** Slots in use on every instance (upstream calls in flight, fast lane and queued). */
  active: number;
  /** Jobs running on this instance. */
  localActive: number;
  averageServiceMs: number;
  fresh: boolean;
  refreshedAt: number;
}

/**
 * Cached queue figures across all instances, refreshed in the background every 200 ms and nudged
 * locally between refreshes, so shedding decisions never wait on Redis. The hard bounds (queue size,
 * slots) are not decided here but atomically in Redis (SlotService).
 */
@Injectable()
export class QueueFigures implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(QueueFigures.name);
  /** Waiting counts read from Redis at the last refresh. */
  private byPriority: Record<Priority, number> = { high: 0, normal: 0, low: 0 };
  /** The waiting requests priced by their own expected service time, at the last refresh. */
  private priced: Record<Priority, PricedWaiting> = { high: { ms: 0, count: 0 }, normal: { ms: 0, count: 0 }, low: { ms: 0, count: 0 } };
  /**
   * What this instance did since the last refresh began, per priority: `queued:p`, `queuedPriced:p` and
   * `queuedMs:p` (requests it queued), `started:p`, `startedPriced:p` and `startedMs:p` (queued jobs it
   * started), `startedKey:id` (per client key), `startedHere` (fast lane too) and `finished`.
   */
  private readonly local = new SinceRefresh();
  private active = 0;
  /** Expected end of each request running here (see trackRunning). */
  private readonly runningEnds = new Map<number, number>();
  private nextRunningId = 0;
  /** Waiting requests per client key id, at the last refresh. */
  private byKey = new Map<string, number>();
  private localActive = 0;
  private refreshedAt = 0;
  private timer?: NodeJS.Timeout;
  private refreshing = false;
  private readonly estimator = new ServiceTimeEstimator({ initialMs: 1000 });
  private readonly waitListeners = new Listeners<[queueWaitMs: number]>('queue wait', new Logger(QueueFigures.name));
  private readonly refreshListeners = new Listeners<[]>('queue figures refresh', new Logger(QueueFigures.name));

  constructor(
    private readonly slots: SlotService,
    @Inject(queueConfig.KEY) private readonly config: ConfigType<typeof queueConfig>,
    private readonly clock: Clock,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), REFRESH_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  /** Called after every refresh of the figures (the worker looks for waiting work it was not woken for). */
  onRefresh(listener: () => void): void {
    this.refreshListeners.add(listener);
  }

  /** Called with each job's queue wait when a worker here starts it. */
  onQueueWait(listener: (queueWaitMs: number) => void): void {
    this.waitListeners.add(listener);
  }

  async refresh(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    const marked = this.local.mark();
    try {
      const figures = await this.slots.figures();
      // Jobs put back for a moment (their key at its concurrency cap) wait like the others.
      this.byPriority = { ...figures.byPriority, normal: figures.byPriority.normal + figures.putBack };
      this.priced = figures.priced;
      this.byKey = figures.byKey;
      this.active = figures.inUse;
      this.local.refreshed(marked);
      this.refreshedAt = this.clock.now();
    } catch (error) {
      this.logger.debug(`queue figures refresh failed: ${(error as Error).message}`);
    } finally {
      this.refreshing = false;
    }
    this.refreshListeners.emit();
  }

  /**
   * Waiting jobs per priority: the last refresh (which counts adds still on their way, reserved in Redis
   * before they are made), minus what this instance started
   * since that refresh began. Starts on other instances show at the next refresh (an overestimate,
   * which errs on the side of shedding).
   */
  private current(): Record<Priority, number> {
    const at = (p: Priority) => Math.max(0, this.byPriority[p] + this.local.since(`queued:${p}`) - this.local.since(`started:${p}`));
    return { high: at('high'), normal: at('normal'), low: at('low') };
  }

  snapshot(): QueueSnapshot {
    const now = this.clock.now();
    const byPriority = this.current();
    return {
      waiting: byPriority.high + byPriority.normal + byPriority.low,
      byPriority,
      active: this.currentActive(),
      localActive: this.localActive,
      averageServiceMs: this.estimator.averageMs(),
      fresh: now - this.refreshedAt <= STALE_AFTER_MS,
      refreshedAt: this.refreshedAt,
    };
  }

  /**
   * Jobs running on any instance: the last refresh, plus what this instance started and minus what it
   * finished since; so a slot freed here shows as free at once (admission never wastes it).
   */
  private currentActive(): number {
    const delta = this.local.since('startedHere') - this.local.since('finished');
    return Math.max(this.localActive, this.active + delta);
  }

  /** Waiting jobs a new request of `priority` would have ahead of it. */
  waitingAhead(priority: Priority): number {
    const b = this.current();
    if (priority === 'high') return b.high;
    if (priority === 'normal') return b.high + b.normal;
    return b.high + b.normal + b.low;
  }

  /**
   * The expected service time of the requests waiting ahead of a new one of `priority`, each priced by
   * its own size; those admitted without an estimate (a model not learned yet) at the average.
   */
  private aheadMs(priority: Priority): number {
    const waiting = this.current();
    const average = this.estimator.averageMs();
    let ms = 0;
    for (const p of PRIORITIES) {
      const since = (what: string) => this.local.since(`queued${what}:${p}`) - this.local.since(`started${what}:${p}`);
      const count = Math.min(waiting[p], Math.max(0, this.priced[p].count + since('Priced')));
      ms += Math.max(0, this.priced[p].ms + since('Ms')) + (waiting[p] - count) * average;
      if (p === priority) break;
    }
    return ms;
  }

  /** Estimated queue wait of a new request of `priority` (see {@link estimateWaitMs}). */
  estimateWaitMs(priority: Priority): number {
    const now = this.clock.now();
    return estimateWaitMs({
      maxConcurrent: this.config.maxConcurrent,
      active: this.currentActive(),
      ahead: this.waitingAhead(priority),
      aheadMs: this.aheadMs(priority),
      runningRemainingMs: [...this.runningEnds.values()].map((end) => end - now),
      averageMs: this.estimator.averageMs(),
    });
  }

  /**
   * Estimated wait of a request at `position` in the queue (1 = next to start), every request ahead of
   * it priced at the mean of what waits.
   */
  estimatePositionWaitMs(position: number): number {
    const now = this.clock.now();
    const ahead = Math.max(0, position - 1);
    return estimateWaitMs({
      maxConcurrent: this.config.maxConcurrent,
      active: this.currentActive(),
      ahead,
      aheadMs: ahead * this.meanWaitingMs(),
      runningRemainingMs: [...this.runningEnds.values()].map((end) => end - now),
      averageMs: this.estimator.averageMs(),
    });
  }

  /**
   * The `Retry-After` of a refusal: the time the queue takes to drain (every waiting request at its own
   * price), or, given `requests`, the time that many of them take.
   */
  retryAfterMs(requests?: number): number {
    const workMs = requests === undefined ? this.aheadMs('low') : requests * this.meanWaitingMs();
    return retryAfterMs(workMs, this.config.maxConcurrent);
  }

  /** The mean expected service time of a waiting request (the average while none waits). */
  private meanWaitingMs(): number {
    const waiting = this.waitingAhead('low');
    return waiting > 0 ? this.aheadMs('low') / waiting : this.estimator.averageMs();
  }

  /**
   * A request started here and is expected to take `expectedMs` upstream (admission's size-aware
   * estimate; the average when unknown). Returns the call for its end.
   */
  trackRunning(expectedMs: number | undefined): () => void {
    const id = this.nextRunningId++;
    this.runningEnds.set(id, this.clock.now() + (expectedMs ?? this.estimator.averageMs()));
    return () => this.runningEnds.delete(id);
  }

  /** Waiting requests of client key `clientId`: the last refresh, minus what this instance started of them since. */
  waitingOf(clientId: string): number {
    const waiting = this.byKey.get(clientId) ?? 0;
    if (waiting === 0) return 0;
    return Math.max(0, waiting - this.local.since(`startedKey:${clientId}`));
  }

  /**
   * Whether `clientId` holds less of the queue than an equal share among the keys with waiting requests
   * (itself counted), while another key holds more: then it is not the one to shed.
   */
  withinFairShare(clientId: string): boolean {
    const mine = this.byKey.get(clientId) ?? 0;
    let total = mine;
    let keys = 1;
    let largestOther = 0;
    for (const [id, waiting] of this.byKey) {
      if (id === clientId || waiting <= 0) continue;
      total += waiting;
      keys++;
      largestOther = Math.max(largestOther, waiting);
    }
    const share = total / keys;
    return mine < share && largestOther > share;
  }

  /**
   * This instance queued a request (Redis reserved its place): it counts at once, before the next
   * refresh shows it, so that a burst of arrivals between two refreshes sees the ones before it.
   */
  jobQueued(priority: Priority, expectedServiceMs?: number): void {
    this.local.add(`queued:${priority}`);
    if (expectedServiceMs !== undefined) {
      this.local.add(`queuedPriced:${priority}`);
      this.local.add(`queuedMs:${priority}`, Math.round(expectedServiceMs));
    }
  }

  /**
   * A request started here: taken from the queue (with its client key and the expected service time it
   * was admitted with, if any), or on the fast lane (it never waited).
   */
  jobStarted(priority: Priority, queueWaitMs: number, from: { queue: boolean; clientId?: string; expectedServiceMs?: number } = { queue: true }): void {
    if (from.queue) {
      this.local.add(`started:${priority}`);
      if (from.clientId !== undefined) this.local.add(`startedKey:${from.clientId}`);
      if (from.expectedServiceMs !== undefined) {
        this.local.add(`startedPriced:${priority}`);
        this.local.add(`startedMs:${priority}`, Math.round(from.expectedServiceMs));
      }
    }
    this.local.add('startedHere');
    this.localActive++;
    this.waitListeners.emit(queueWaitMs);
  }

  /** `serviceMs` is undefined for a job dropped without upstream work (it says nothing of service time). */
  jobFinished(serviceMs: number | undefined): void {
    this.localActive = Math.max(0, this.localActive - 1);
    this.local.add('finished');
    if (serviceMs !== undefined) this.estimator.record(serviceMs);
  }
}

