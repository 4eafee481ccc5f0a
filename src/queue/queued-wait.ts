import type { Queue } from 'bullmq';
import { Clock } from '../common/clock';
import { DeadlineExceededError, untilAborted, withDeadline } from '../common/deadline';
import { QueueTimeoutError, RequestTimeoutError, UpstreamError } from '../common/errors';
import type { RedisService } from '../redis/redis.service';
import type { CancellationService } from '../cancellation/cancellation.service';
import type { DeliveredAnswer, PendingDelivery } from '../delivery/delivery.service';
import type { InferenceJobData, InferenceJobResult } from './inference-job';
import type { QueueFigures } from './queue-figures.service';
import type { SlotService } from './slot.service';

/** The one tick of every waiting request of this instance: status comments on each, the watchdog on every fifth. */
const TICK_MS = 1000;
/** A handler that has heard nothing checks that its job still exists every this many ticks. */
const WATCHDOG_TICKS = 5;
/** How long a handler whose deadline passed waits for the worker's own verdict on a running job. */
const VERDICT_GRACE_MS = 500;

/** Where a waiting request stands in the queue (`X-Queue-Status: comments`). */
export interface QueueStatus {
  /** 1 = next to start; null when it cannot be read. */
  position: number | null;
  /** Estimated wait until it starts. */
  waitMs: number;
}

interface Waiter {
  id: string;
  pending: PendingDelivery;
  report?: (status: QueueStatus) => void;
  /** Watchdog checks in a row that found the job gone. */
  misses: number;
  lost(error: Error): void;
}

/**
 * The handler's side of queued sync jobs while they wait: each one's answer or its caller's signal,
 * whichever comes first, with a watchdog that does not trust the delivery alone; what to do when the
 * caller stops waiting; and where each stands, for `X-Queue-Status: comments`. Every waiting request of
 * the instance shares one tick, and each tick reads Redis in one pipelined round trip for all of them.
 */
export class QueuedJobWait {
  private readonly waiters = new Set<Waiter>();
  private timer?: NodeJS.Timeout;
  private ticks = 0;

  constructor(
    private readonly queue: Queue<InferenceJobData, InferenceJobResult>,
    private readonly cancellation: CancellationService,
    private readonly slots: SlotService,
    private readonly figures: QueueFigures,
    private readonly redis: RedisService,
    private readonly clock: Clock,
  ) {}

  /**
   * Waits for a queued sync job's answer, its caller's signal, or proof that the job is gone; `report`
   * hears where it stands now and on every tick until it starts. On abort, a job still waiting is removed
   * (it never reaches the upstream); a running one is cancelled where it runs.
   */
  async answer(jobId: string, pending: PendingDelivery, signal: AbortSignal, enqueuedAt: number, report?: (status: QueueStatus) => void): Promise<DeliveredAnswer> {
    let waiter!: Waiter;
    // Correctness does not rest on the delivery alone: a job that is gone while nothing arrived is lost.
    const lost = new Promise<never>((_, reject) => {
      waiter = { id: jobId, pending, report, misses: 0, lost: reject };
    });
    lost.catch(() => undefined);
    this.add(waiter);
    try {
      return await untilAborted(Promise.race([pending.answer, lost]), signal);
    } catch (error) {
      if (signal.aborted && error === signal.reason) throw await this.abandon(jobId, pending, signal.reason, enqueuedAt);
      throw error;
    } finally {
      this.remove(waiter);
    }
  }

  /** Stops the tick (shutdown); waits end by their own signals. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private add(waiter: Waiter): void {
    this.waiters.add(waiter);
    if (waiter.report) void this.reportStatus([waiter]);
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), TICK_MS);
      this.timer.unref();
    }
  }

  private remove(waiter: Waiter): void {
    this.waiters.delete(waiter);
    if (this.waiters.size === 0) this.stop();
  }

  private async tick(): Promise<void> {
    this.ticks++;
    const waiters = [...this.waiters];
    await Promise.all([
      this.reportStatus(waiters.filter((w) => w.report && w.pending.startedAt() === undefined)),
      this.ticks % WATCHDOG_TICKS === 0 ? this.watch(waiters) : undefined,
    ]);
  }

  /** Tells each waiter its position and estimated wait, from one pipelined read of the ranks. */
  private async reportStatus(waiters: Waiter[]): Promise<void> {
    if (waiters.length === 0) return;
    const pipeline = this.redis.client.pipeline();
    for (const w of waiters) pipeline.zrank(this.queue.keys.prioritized, w.id);
    const ranks = await pipeline.exec().catch(() => null);
    waiters.forEach((w, i) => {
      if (!this.waiters.has(w) || w.pending.startedAt() !== undefined) return;
      const [error, rank] = ranks?.[i] ?? [null, null];
      const position = error || typeof rank !== 'number' ? null : rank + 1;
      w.report?.({ position, waitMs: this.figures.estimatePositionWaitMs(position ?? 1) });
    });
  }

  /** Checks, in one pipelined read, that every waiter's job still exists; a job gone twice in a row is lost. */
  private async watch(waiters: Waiter[]): Promise<void> {
    if (waiters.length === 0) return;
    const pipeline = this.redis.client.pipeline();
    for (const w of waiters) pipeline.exists(this.queue.toKey(w.id));
    const found = await pipeline.exec().catch(() => null);
    if (!found) return;
    waiters.forEach((w, i) => {
      const [error, exists] = found[i] ?? [null, 1];
      if (error) return;
      w.misses = exists === 1 ? 0 : w.misses + 1;
      if (w.misses >= 2) w.lost(new UpstreamError('The queued request was lost before it was answered'));
    });
  }

  /**
   * The caller stopped waiting: take the job back and say why. A job removed before any worker took it
   * never reached the upstream (`queue_timeout`); for one already running, the worker knows whether the
   * upstream was called, so its verdict is awaited briefly.
   */
  private async abandon(jobId: string, pending: PendingDelivery, reason: unknown, enqueuedAt: number): Promise<unknown> {
    const removed =
      pending.startedAt() === undefined &&
      (await this.queue
        .remove(jobId)
        .then((count) => count > 0)
        .catch(() => false));
    if (removed) {
      void this.slots.forget(jobId).catch(() => undefined);
      return reason instanceof RequestTimeoutError ? new QueueTimeoutError(this.clock.now() - enqueuedAt) : reason;
    }
    if (!(reason instanceof RequestTimeoutError)) {
      await this.cancellation.cancel(jobId).catch(() => undefined);
      return reason;
    }
    // The worker's own timer fires at the same deadline and says whether the upstream was ever called
    // (queue_timeout) or not; a cancel now would silence that verdict, so it only follows one that is late.
    const verdict = await withDeadline(pending.answer, VERDICT_GRACE_MS).then(
      () => reason,
      (error: unknown) => (error instanceof DeadlineExceededError ? undefined : error),
    );
    if (verdict !== undefined) return verdict;
    await this.cancellation.cancel(jobId).catch(() => undefined);
    return reason;
  }
}
