import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Priority } from '../common/priority';
import { ServiceTimeEstimator } from './wait-estimator';
import { Clock } from '../common/clock';
import { Listeners } from '../common/listeners';
import { queueConfig } from '../config/sections';
import { SlotService } from './slot.service';

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
  /** Queued jobs started by this instance, ever; and their values when the last refresh began. */
  private readonly started: Record<Priority, number> = { high: 0, normal: 0, low: 0 };
  private startedAtRefresh: Record<Priority, number> = { high: 0, normal: 0, low: 0 };
  private active = 0;
  /** Expected end of each request running here (see trackRunning). */
  private readonly runningEnds = new Map<number, number>();
  private nextRunningId = 0;
  /** Waiting requests per client key id, at the last refresh. */
  private byKey = new Map<string, number>();
  private localActive = 0;
  /** Jobs finished here, ever; and the value when the last refresh began (for the active count between refreshes). */
  private finished = 0;
  private finishedAtRefresh = 0;
  /** Requests started here (fast lane and queued), ever; and the value when the last refresh began. */
  private startedHere = 0;
  private startedHereAtRefresh = 0;
  private refreshedAt = 0;
  private timer?: NodeJS.Timeout;
  private refreshing = false;
  private readonly estimator = new ServiceTimeEstimator({ initialMs: 1000 });
  private readonly waitListeners = new Listeners<[queueWaitMs: number]>('queue wait', new Logger(QueueFigures.name));

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

  /** Called with each job's queue wait when a worker here starts it. */
  onQueueWait(listener: (queueWaitMs: number) => void): void {
    this.waitListeners.add(listener);
  }

  async refresh(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    const started = { ...this.started };
    const finished = this.finished;
    const startedHere = this.startedHere;
    try {
      const figures = await this.slots.figures();
      // Jobs put back for a moment (their key at its concurrency cap) wait like the others.
      this.byPriority = { ...figures.byPriority, normal: figures.byPriority.normal + figures.putBack };
      this.byKey = figures.byKey;
      this.active = figures.inUse;
      this.startedAtRefresh = started;
      this.finishedAtRefresh = finished;
      this.startedHereAtRefresh = startedHere;
      this.refreshedAt = this.clock.now();
    } catch (error) {
      this.logger.debug(`queue figures refresh failed: ${(error as Error).message}`);
    } finally {
      this.refreshing = false;
    }
  }

  /**
   * Waiting jobs per priority: the last refresh (which counts adds still on their way, reserved in Redis
   * before they are made), minus what this instance started
   * since that refresh began. Starts on other instances show at the next refresh (an overestimate,
   * which errs on the side of shedding).
   */
  private current(): Record<Priority, number> {
    const at = (p: Priority) =>
      Math.max(0, this.byPriority[p] - (this.started[p] - this.startedAtRefresh[p]));
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
    const delta = this.startedHere - this.startedHereAtRefresh - (this.finished - this.finishedAtRefresh);
    return Math.max(this.localActive, this.active + delta);
  }

  /** Waiting jobs a new request of `priority` would have ahead of it. */
  waitingAhead(priority: Priority): number {
    const b = this.current();
    if (priority === 'high') return b.high;
    if (priority === 'normal') return b.high + b.normal;
    return b.high + b.normal + b.low;
  }

  /** Estimated queue wait of a new request: only the jobs ahead of it beyond the free slots make it wait. */
  estimateWaitMs(priority: Priority): number {
    const active = this.currentActive();
    const freeSlots = Math.max(0, this.config.maxConcurrent - active);
    const ahead = this.waitingAhead(priority);
    if (freeSlots > ahead) return 0;
    // Every slot is taken before its turn: it waits for the requests ahead of it to be served, round by
    // round, then for a running request to end. When every running request runs here, their expected
    // ends say when the first slot frees; otherwise half a service time on average. (A wait of 0 with
    // every slot busy would admit requests that cannot finish in time.)
    const rounds = Math.floor((ahead - freeSlots) / this.config.maxConcurrent);
    return rounds * this.estimator.averageMs() + this.firstSlotFreeInMs(active);
  }

  /** When the first busy slot should free, as far as this instance can tell. */
  private firstSlotFreeInMs(active: number): number {
    const half = 0.5 * this.estimator.averageMs();
    if (this.runningEnds.size === 0 || this.runningEnds.size < active) return half;
    const now = this.clock.now();
    let earliest = Number.POSITIVE_INFINITY;
    for (const end of this.runningEnds.values()) earliest = Math.min(earliest, end);
    return Number.isFinite(earliest) ? Math.max(0, earliest - now) : half;
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

  /** Waiting requests of client key `clientId` (last refresh). */
  waitingOf(clientId: string): number {
    return this.byKey.get(clientId) ?? 0;
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

  /** A request started here: taken from the queue, or on the fast lane (it never waited). */
  jobStarted(priority: Priority, queueWaitMs: number, fromQueue = true): void {
    if (fromQueue) this.started[priority]++;
    this.startedHere++;
    this.localActive++;
    this.waitListeners.emit(queueWaitMs);
  }

  /** `serviceMs` is undefined for a job dropped without upstream work (it says nothing of service time). */
  jobFinished(serviceMs: number | undefined): void {
    this.localActive = Math.max(0, this.localActive - 1);
    this.finished++;
    if (serviceMs !== undefined) this.estimator.record(serviceMs);
  }
}
