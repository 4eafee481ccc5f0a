import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { ClusterIdentity } from '../cluster/cluster-identity';
import { batchConfig, queueConfig } from '../config/sections';
import { SlotService } from '../queue/slot.service';
import { RedisService } from '../redis/redis.service';
import { BatchFigures } from './batch-figures';
import { BatchRunner } from './batch-runner';
import { BatchStore } from './batch-store';

function preemptChannel(instanceId: string): string {
  return `bulwark:batch:preempt:${instanceId}`;
}

/**
 * Gives interactive work the slots batch lines hold: when a request is queued while every slot is
 * taken, the batch line started last, on whichever instance, stops (one Lua step picks it, so one
 * request stops one line; its instance hears it on its own channel) and its slot goes back through the
 * queue core to the request. A lost message only means the request waits for the next slot to free.
 */
@Injectable()
export class BatchPreemption implements OnApplicationBootstrap {
  private readonly logger = new Logger(BatchPreemption.name);

  constructor(
    private readonly runner: BatchRunner,
    private readonly store: BatchStore,
    private readonly slots: SlotService,
    private readonly redis: RedisService,
    private readonly identity: ClusterIdentity,
    private readonly figures: BatchFigures,
    @Inject(queueConfig.KEY) private readonly queue: ConfigType<typeof queueConfig>,
    @Inject(batchConfig.KEY) private readonly config: ConfigType<typeof batchConfig>,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.preempt) return;
    // Any instance that queues interactive work may stop a line, even one that runs none itself.
    this.slots.onQueued((jobId) => this.afterGrace(jobId));
    if (!this.queue.workerEnabled) return;
    const subscriber = this.redis.create('batch-preempt', { enableOfflineQueue: true, maxRetriesPerRequest: null });
    subscriber.on('message', (_channel: string, slotLease: string) => this.runner.stop(slotLease));
    await subscriber.subscribe(preemptChannel(this.identity.id)).catch((error: Error) => this.logger.warn(`batch preempt channel: ${error.message}`));
  }

  /**
   * A slot usually frees by itself within a fraction of a request's time (every running request ends
   * some time): the request waits BATCH_PREEMPT_AFTER_MS for that first, so lines are stopped (and
   * their work lost) only when it would wait longer.
   */
  private afterGrace(jobId: string): void {
    const figures = this.figures.snapshot();
    if (figures.activeBatches === 0 && figures.linesRunning === 0) return;
    if (this.config.preemptAfterMs === 0) {
      void this.preemptFor(jobId);
      return;
    }
    setTimeout(() => void this.preemptFor(jobId), this.config.preemptAfterMs).unref();
  }

  /** Stops the line started last if job `jobId` still waits and every slot is taken. */
  private async preemptFor(jobId: string): Promise<void> {
    try {
      const picked = await this.store.preempt(this.slots.keys, this.queue.maxConcurrent, jobId);
      if (!picked) return;
      if (picked.instanceId === this.identity.id) this.runner.stop(picked.slotLease);
      else await this.redis.client.publish(preemptChannel(picked.instanceId), picked.slotLease);
    } catch (error) {
      this.logger.debug(`batch preemption failed: ${(error as Error).message}`);
    }
  }
}
