import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import { CancelledError } from '../common/errors';
import { RedisService } from '../redis/redis.service';

const CANCEL_CHANNEL = 'bulwark:jobs:cancel';
const CANCEL_KEY_PREFIX = 'bulwark:jobs:cancel:';
const CANCEL_KEY_TTL_MS = 3600_000;
/** Cancels are also read from their keys this often, so one lost while a subscriber reconnects still lands. */
const CANCEL_POLL_MS = 150;

/**
 * The one owner of the per-job `AbortController`s of the work running here, and the way a cancel reaches
 * whichever instance runs a job: a key per cancelled job that is polled while jobs run here (it survives a
 * subscriber's reconnect), plus a pub/sub message to make it immediate.
 */
@Injectable()
export class CancellationService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(CancellationService.name);
  private readonly running = new Map<string, AbortController>();
  private subscriber?: Redis;
  private poll?: NodeJS.Timeout;

  constructor(private readonly redis: RedisService) {}

  async onApplicationBootstrap(): Promise<void> {
    this.subscriber = this.redis.create('jobs-cancel', { enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.subscriber.on('message', (_channel: string, jobId: string) => this.abortHere(jobId));
    await this.subscriber.subscribe(CANCEL_CHANNEL).catch((error: Error) => this.logger.warn(`cancel subscribe failed: ${error.message}`));
    this.poll = setInterval(() => void this.pollCancels(), CANCEL_POLL_MS);
    this.poll.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.poll);
    this.subscriber?.disconnect();
  }

  /**
   * Job `jobId` starts running here: its controller, aborted by a cancel from any instance. Call the
   * returned function when it ends.
   */
  open(jobId: string): { signal: AbortSignal; abort(reason: unknown): void; close(): void } {
    const controller = new AbortController();
    this.running.set(jobId, controller);
    return {
      signal: controller.signal,
      abort: (reason) => controller.abort(reason),
      close: () => {
        if (this.running.get(jobId) === controller) this.running.delete(jobId);
      },
    };
  }

  /** Aborts every job running here with `reason` (the end of a shutdown's grace period). */
  abortAll(reason: unknown): void {
    for (const controller of this.running.values()) controller.abort(reason);
  }

  /** Whether a cancel was asked for `jobId` (from any instance). */
  async cancelRequested(jobId: string): Promise<boolean> {
    return (await this.redis.client.exists(CANCEL_KEY_PREFIX + jobId)) === 1;
  }

  /** Aborts a job wherever it runs, or keeps it from starting. */
  async cancel(jobId: string): Promise<void> {
    this.abortHere(jobId);
    await this.redis.client.set(CANCEL_KEY_PREFIX + jobId, '1', 'PX', CANCEL_KEY_TTL_MS);
    await this.redis.client.publish(CANCEL_CHANNEL, jobId).catch(() => undefined);
  }

  private abortHere(jobId: string): void {
    this.running.get(jobId)?.abort(new CancelledError('job_cancel'));
  }

  private async pollCancels(): Promise<void> {
    if (this.running.size === 0 || !this.redis.ready) return;
    const ids = [...this.running.keys()];
    try {
      const marks = await this.redis.client.mget(ids.map((id) => CANCEL_KEY_PREFIX + id));
      marks.forEach((mark, i) => {
        if (mark !== null) this.abortHere(ids[i]);
      });
    } catch {
      // Redis is away: the next poll tries again.
    }
  }
}
