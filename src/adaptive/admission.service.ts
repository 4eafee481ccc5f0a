import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Clock } from '../common/clock';
import { CircuitOpenError, DeadlineUnreachableError, LoadShedError, NotFoundError, QueueFullError } from '../common/errors';
import { RandomSource } from '../common/random';
import { adaptiveConfig, queueConfig } from '../config/sections';
import { UpstreamDispatcher } from '../dispatch/upstream-dispatcher';
import { QueueFigures } from '../queue/queue-figures.service';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import { AdaptiveService } from './adaptive.service';
import { Priority, shouldShed } from './graduated-rejection';
import { drainTimeSeconds } from './wait-estimator';

export interface AdmissionRequest {
  priority: Priority;
  model: string | undefined;
  deadlineAt: number;
}

export type RejectionReason = 'queue_full' | 'load_shed_queue' | 'load_shed_abandoned' | 'load_shed_strategy' | 'deadline_unreachable' | 'circuit_open' | 'store_unavailable';

/**
 * Admission control at the door, from cached figures only (no Redis round trip): full queue, graduated
 * shedding per priority on queue fill and abandoned capacity, the strategy's own rule, deadlines that
 * the estimated queue wait cannot meet, and models whose every upstream is open.
 */
@Injectable()
export class AdmissionService {
  private readonly rejectionListeners: ((reason: RejectionReason) => void)[] = [];
  private readonly admissionListeners: ((priority: Priority) => void)[] = [];

  constructor(
    @Inject(adaptiveConfig.KEY) private readonly config: ConfigType<typeof adaptiveConfig>,
    @Inject(queueConfig.KEY) private readonly queue: ConfigType<typeof queueConfig>,
    private readonly figures: QueueFigures,
    private readonly adaptive: AdaptiveService,
    private readonly dispatcher: UpstreamDispatcher,
    private readonly registry: UpstreamRegistry,
    private readonly clock: Clock,
    private readonly random: RandomSource,
  ) {}

  onRejection(listener: (reason: RejectionReason) => void): void {
    this.rejectionListeners.push(listener);
  }

  /** Called with the priority of every admitted request (metrics, dashboard). */
  onAdmission(listener: (priority: Priority) => void): void {
    this.admissionListeners.push(listener);
  }

  /** Throws the typed refusal, or returns when the request may be queued. */
  admit(request: AdmissionRequest): void {
    try {
      this.check(request);
      this.adaptive.noteAdmission(true);
      for (const listener of this.admissionListeners) listener(request.priority);
    } catch (error) {
      if (!(error instanceof NotFoundError)) this.adaptive.noteAdmission(false);
      throw error;
    }
  }

  private refuse(reason: RejectionReason, error: Error): never {
    for (const listener of this.rejectionListeners) listener(reason);
    throw error;
  }

  private check({ priority, model, deadlineAt }: AdmissionRequest): void {
    const queue = this.figures.snapshot();
    const retryAfterMs = drainTimeSeconds(queue.waiting, this.queue.maxConcurrent, queue.averageServiceMs) * 1000;
    if (!queue.fresh) {
      this.refuse('store_unavailable', new LoadShedError('queue figures are unavailable: the queue store (Redis) is unreachable', 5000));
    }
    if (typeof model === 'string' && !this.registry.knows(model)) {
      throw new NotFoundError('model_not_found', `The model \`${model.slice(0, 256)}\` does not exist`, 'model');
    }
    // The most specific refusal first: every upstream of the model is open (the strategy follows from it).
    if (typeof model === 'string') {
      const availability = this.dispatcher.availability(model);
      if (!availability.available) this.refuse('circuit_open', new CircuitOpenError(model, availability.retryInMs));
    }
    if (!this.adaptive.effects().admits(priority)) {
      this.refuse('load_shed_strategy', new LoadShedError(`strategy ${this.adaptive.strategy}: only high priority is admitted`, retryAfterMs));
    }
    if (queue.waiting >= this.queue.maxQueueSize) {
      this.refuse('queue_full', new QueueFullError(queue.waiting, this.queue.maxQueueSize, retryAfterMs));
    }
    const fill = queue.waiting / this.queue.maxQueueSize;
    if (shouldShed(fill, this.config.queueRejectionThreshold, priority, this.random)) {
      this.refuse('load_shed_queue', new LoadShedError(`queue ${Math.round(fill * 100)}% full`, retryAfterMs));
    }
    const abandonedUse = this.adaptive.abandoned.capacityUsed();
    if (shouldShed(abandonedUse, this.config.abandonedRejectionThreshold, priority, this.random)) {
      const resetMs = Math.min(this.adaptive.abandoned.timeUntilResetMs(), this.config.resetIntervalMs / 4);
      this.refuse('load_shed_abandoned', new LoadShedError(`${Math.round(abandonedUse * 100)}% of abandoned-request capacity in use`, Math.max(1000, resetMs)));
    }
    const remainingMs = deadlineAt - this.clock.now();
    const estimatedWaitMs = this.figures.estimateWaitMs(priority);
    if (estimatedWaitMs > remainingMs) {
      this.refuse('deadline_unreachable', new DeadlineUnreachableError(estimatedWaitMs, remainingMs, retryAfterMs));
    }
  }
}
