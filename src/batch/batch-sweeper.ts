import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Clock } from '../common/clock';
import { RedisService } from '../redis/redis.service';
import { BatchFigures } from './batch-figures';
import { BatchFinalizer } from './batch-finalizer';
import { BatchRunner } from './batch-runner';
import { BatchStore } from './batch-store';

/** How often each instance looks for batches that may end, and for idle slots it was not told about. */
const SWEEP_MS = 500;

/**
 * Every instance's periodic look at the unfinished batches: ends those that may end (all lines done,
 * cancelled with none running, past their window, or left half-finalized by an instance that died),
 * keeps the batch figures, and lets the runner fill slots that freed on other instances.
 */
@Injectable()
export class BatchSweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(BatchSweeper.name);
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly store: BatchStore,
    private readonly finalizer: BatchFinalizer,
    private readonly runner: BatchRunner,
    private readonly figures: BatchFigures,
    private readonly redis: RedisService,
    private readonly clock: Clock,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  async sweep(): Promise<void> {
    if (!this.redis.ready) return;
    try {
      const now = this.clock.now();
      const active = await this.store.active();
      this.figures.sweptActive(active);
      for (const batch of active) {
        const mayEnd =
          batch.sealed || batch.status === 'cancelling' || (batch.status === 'in_progress' && (batch.done >= batch.total || now >= batch.expiresAtMs));
        if (mayEnd) await this.finalizer.finalize(batch.id);
      }
    } catch (error) {
      this.logger.debug(`batch sweep failed: ${(error as Error).message}`);
    }
    this.runner.fill();
  }
}
