import type { ConfigType } from '@nestjs/config';
import type { Queue } from 'bullmq';
import { Clock } from '../common/clock';
import { DeadlineExceededError, withDeadline } from '../common/deadline';
import { QueueTimeoutError, RequestTimeoutError, UpstreamError } from '../common/errors';
import type { queueConfig } from '../config/sections';
import type { RedisService } from '../redis/redis.service';
import type { CancellationService } from '../cancellation/cancellation.service';
import type { DeliveredAnswer, PendingDelivery } from '../delivery/delivery.service';
import type { InferenceJobData, InferenceJobResult } from './inference-job';
import type { QueueFigures } from './queue-figures.service';
import type { SlotService } from './slot.service';

/** How often a handler that has heard nothing checks that its job still exists. */
const WATCHDOG_MS = 5000;
/** How often a waiting streamed request with `X-Queue-Status: comments` hears where it stands. */
const STATUS_EVERY_MS = 1000;
/** How long a handler whose deadline passed waits for the worker's own verdict on a running job. */
const VERDICT_GRACE_MS = 500;

/** Where a waiting request stands in the queue (`X-Queue-Status: comments`). */
export interface QueueStatus {
  /** 1 = next to start; null when it cannot be read. */
  position: number | null;
  /** Estimated wait until it starts. */
  waitMs: number;
}

/**
 * The handler's side of a queued sync job while it waits: its answer or its caller's signal, whichever
 * comes first, with a watchdog that does not trust the delivery alone; what to do when the caller stops
 * waiting; and where it stands, for `X-Queue-Status: comments`.
 */
export class QueuedJobWait {
  constructor(
    private readonly queue: Queue<InferenceJobData, InferenceJobResult>,
    private readonly cancellation: CancellationService,
    private readonly slots: SlotService,
    private readonly figures: QueueFigures,
    private readonly redis: RedisService,
    private readonly clock: Clock,
    private readonly config: ConfigType<typeof queueConfig>,
  ) {}

  /** Reports a waiting job's position and estimated wait now and about every second until it starts. */
  reportWhileWaiting(id: string, pending: PendingDelivery, report: (status: QueueStatus) => void): () => void {
    let stopped = false;
    const tick = async () => {
      if (stopped || pending.startedAt() !== undefined) return;
      const rank = await this.redis.client.zrank(this.queue.keys.prioritized, id).catch(() => null);
      if (stopped || pending.startedAt() !== undefined) return;
      const ahead = rank ?? 0;
      const { averageServiceMs } = this.figures.snapshot();
      report({ position: rank === null ? null : rank + 1, waitMs: ((ahead + 1) * averageServiceMs) / this.config.maxConcurrent });
    };
    void tick();
    const timer = setInterval(() => void tick(), STATUS_EVERY_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }

  /**
   * Waits for a queued sync job's answer, its caller's signal, or proof that the job is gone. On abort, a
   * job still waiting is removed (it never reaches the upstream); a running one is cancelled where it runs.
   */
  async answer(jobId: string, pending: PendingDelivery, signal: AbortSignal, enqueuedAt: number): Promise<DeliveredAnswer> {
    let onAbort!: () => void;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    // Correctness does not rest on the delivery alone: a job that is gone while nothing arrived is lost.
    let misses = 0;
    let watchdog: NodeJS.Timeout | undefined;
    const lost = new Promise<never>((_, reject) => {
      watchdog = setInterval(() => {
        void this.queue.getJob(jobId).then(
          (job) => {
            misses = job ? 0 : misses + 1;
            if (misses >= 2) reject(new UpstreamError('The queued request was lost before it was answered'));
          },
          () => undefined,
        );
      }, WATCHDOG_MS);
    });
    lost.catch(() => undefined);
    try {
      return await Promise.race([pending.answer, aborted, lost]);
    } catch (error) {
      if (signal.aborted && error === signal.reason) throw await this.abandon(jobId, pending, signal.reason, enqueuedAt);
      throw error;
    } finally {
      clearInterval(watchdog);
      signal.removeEventListener('abort', onAbort);
    }
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
