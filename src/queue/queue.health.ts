import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { HealthIndicatorService } from '@nestjs/terminus';
import { Clock } from '../common/clock';
import { queueConfig } from '../config/sections';
import { QueueFigures } from './queue-figures.service';

/**
 * Terminus indicator of the shared queue, from the cached figures (no Redis call): waiting per
 * priority, active, capacity. Down when the figures are stale, i.e. the queue store cannot be read
 * and admission is failing closed.
 */
@Injectable()
export class QueueHealthIndicator {
  constructor(
    private readonly figures: QueueFigures,
    @Inject(queueConfig.KEY) private readonly config: ConfigType<typeof queueConfig>,
    private readonly health: HealthIndicatorService,
    private readonly clock: Clock,
  ) {}

  /** Up with the queue figures, or down (same figures) when they are stale. */
  isHealthy(key = 'queue') {
    const indicator = this.health.check(key);
    const q = this.figures.snapshot();
    const details = {
      waiting: q.waiting,
      active: q.active,
      by_priority: q.byPriority,
      max_queue_size: this.config.maxQueueSize,
      max_concurrent: this.config.maxConcurrent,
      capacity_percent: Math.round((q.waiting / this.config.maxQueueSize) * 10_000) / 100,
      figures_age_ms: q.refreshedAt ? Math.max(0, this.clock.now() - q.refreshedAt) : null,
    };
    return q.fresh ? indicator.up(details) : indicator.down({ ...details, message: 'queue figures are stale: the queue store (Redis) is not answering' });
  }
}
