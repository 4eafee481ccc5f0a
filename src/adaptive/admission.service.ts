import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Clock } from '../common/clock';
import { Listeners } from '../common/listeners';
import { CircuitOpenError, DeadlineUnreachableError, LoadShedError, NotFoundError, QueueFullError, withoutStack } from '../common/errors';
import { RandomSource } from '../common/random';
import { adaptiveConfig, queueConfig } from '../config/sections';
import { UpstreamDispatcher } from '../dispatch/upstream-dispatcher';
import { QueueFigures } from '../queue/queue-figures.service';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import { AdaptiveService } from './adaptive.service';
import { shouldShed } from './graduated-rejection';
import { Priority } from '../common/priority';
import type { RequestSize } from './service-time-model';
import { ServiceTimes } from './service-times.service';
import { drainTimeSeconds } from '../queue/wait-estimator';

const REFUSAL_SUMMARY_MS = 10_000;

export interface AdmissionRequest {
  priority: Priority;
  model: string | undefined;
  deadlineAt: number;
  /** Output-token limit and prompt length, for the request's own service time. */
  size?: RequestSize;
  /** Non-secret id of the client key: shedding spares a key within its fair share of the queue. */
  clientId?: string;
}

export type RejectionReason = 'queue_full' | 'load_shed_queue' | 'load_shed_abandoned' | 'load_shed_strategy' | 'deadline_unreachable' | 'circuit_open' | 'store_unavailable';

/**
 * Admission control at the door, from cached figures only (no Redis round trip). In order: the door's
 * refusals (store away, queue full, abandoned capacity exhausted), unknown model, every upstream open;
 * then, only while there is contention (requests waiting or no free slot), the strategy's rule and
 * graduated shedding on queue fill and abandoned capacity; last, deadlines that the estimated queue
 * wait plus the request's own estimated service time cannot meet.
 *
 * Deciding ({@link check}) counts refusals only; an admission is counted by {@link recordAdmitted}
 * once the queue has accepted the request, so a request refused later (a 400 from the body's
 * validation, a full queue at enqueue) never counts as admitted.
 */
@Injectable()
export class AdmissionService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(AdmissionService.name);
  private readonly rejectionListeners = new Listeners<[RejectionReason]>('rejection', this.logger);
  private readonly admissionListeners = new Listeners<[Priority]>('admission', this.logger);
  /** Refusals are logged as one summary line per period rather than one line each. */
  private readonly refusedSinceSummary = new Map<RejectionReason, number>();
  private summaryTimer?: NodeJS.Timeout;

  onApplicationBootstrap(): void {
    this.summaryTimer = setInterval(() => this.logRefusalSummary(), REFUSAL_SUMMARY_MS);
    this.summaryTimer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.summaryTimer);
    this.logRefusalSummary();
  }

  private logRefusalSummary(): void {
    if (this.refusedSinceSummary.size === 0) return;
    const byReason = Object.fromEntries(this.refusedSinceSummary);
    const total = [...this.refusedSinceSummary.values()].reduce((a, b) => a + b, 0);
    this.refusedSinceSummary.clear();
    this.logger.warn({ refused: total, byReason, periodMs: REFUSAL_SUMMARY_MS }, `refused ${total} request(s) in the last ${REFUSAL_SUMMARY_MS / 1000} s`);
  }

  constructor(
    @Inject(adaptiveConfig.KEY) private readonly config: ConfigType<typeof adaptiveConfig>,
    @Inject(queueConfig.KEY) private readonly queue: ConfigType<typeof queueConfig>,
    private readonly figures: QueueFigures,
    private readonly adaptive: AdaptiveService,
    private readonly dispatcher: UpstreamDispatcher,
    private readonly registry: UpstreamRegistry,
    private readonly clock: Clock,
    private readonly random: RandomSource,
    private readonly serviceTimes: ServiceTimes,
  ) {}

  onRejection(listener: (reason: RejectionReason) => void): void {
    this.rejectionListeners.add(listener);
  }

  /** Called with the priority of every admitted request (metrics, dashboard). */
  onAdmission(listener: (priority: Priority) => void): void {
    this.admissionListeners.add(listener);
  }

  /** Counts one admission; call once the queue has accepted the request. */
  recordAdmitted(priority: Priority): void {
    this.adaptive.noteAdmission(true);
    this.admissionListeners.emit(priority);
  }

  private refuse(reason: RejectionReason, build: () => Error): never {
    this.noteRefusal(reason);
    throw withoutStack(build);
  }

  private noteRefusal(reason: RejectionReason): void {
    this.adaptive.noteAdmission(false);
    this.refusedSinceSummary.set(reason, (this.refusedSinceSummary.get(reason) ?? 0) + 1);
    this.rejectionListeners.emit(reason);
  }

  /**
   * The refusals that apply to every request whatever its key, priority or body (queue full, queue
   * store unreachable, abandoned capacity exhausted), from cached figures. Checked before routing,
   * guards and body parsing, so that shedding under overload costs a small fraction of serving.
   */
  refusalForAll(): Error | undefined {
    const queue = this.figures.snapshot();
    if (!queue.fresh) {
      this.noteRefusal('store_unavailable');
      return withoutStack(() => new LoadShedError('queue figures are unavailable: the queue store (Redis) is unreachable', 5000));
    }
    const retryAfterMs = () => drainTimeSeconds(queue.waiting, this.queue.maxConcurrent, queue.averageServiceMs) * 1000;
    if (queue.waiting >= this.queue.maxQueueSize) {
      this.noteRefusal('queue_full');
      return withoutStack(() => new QueueFullError(queue.waiting, this.queue.maxQueueSize, retryAfterMs()));
    }
    const abandonedUse = this.adaptive.abandoned.capacityUsed();
    if (abandonedUse >= 1) {
      this.noteRefusal('load_shed_abandoned');
      const resetMs = Math.min(this.adaptive.abandoned.timeUntilResetMs(), this.config.resetIntervalMs / 4);
      return withoutStack(() => new LoadShedError(`${Math.round(abandonedUse * 100)}% of abandoned-request capacity in use`, Math.max(1000, resetMs)));
    }
    return undefined;
  }

  /**
   * Throws the typed refusal (and counts it), or returns when the request may be queued. Counts no
   * admission: the caller calls {@link recordAdmitted} once the queue took the request.
   */
  check({ priority, model, deadlineAt, size, clientId }: AdmissionRequest): { expectedServiceMs?: number } {
    // The door's refusals first (figures may have moved since the request passed it).
    const forAll = this.refusalForAll();
    if (forAll) throw forAll;
    const queue = this.figures.snapshot();
    const retryAfterMs = drainTimeSeconds(queue.waiting, this.queue.maxConcurrent, queue.averageServiceMs) * 1000;
    if (typeof model === 'string' && !this.registry.knows(model)) {
      throw new NotFoundError('model_not_found', `The model \`${model.slice(0, 256)}\` does not exist`, 'model');
    }
    // The most specific refusal first: every upstream of the model is open (the strategy follows from it).
    if (typeof model === 'string') {
      const availability = this.dispatcher.availability(model);
      if (!availability.available) this.refuse('circuit_open', () => new CircuitOpenError(model, availability.retryInMs));
    }
    // Restrictions exist to protect work in progress: with nobody waiting and a slot free, the request
    // harms no one, whatever the strategy says (no free slot is ever wasted after an overload burst).
    const contended = queue.waiting > 0 || queue.active >= this.queue.maxConcurrent;
    // Under contention shedding falls first on keys above their fair share: a key that holds less of the
    // queue than its share, while another holds more, is not shed (fair ordering then serves it soon).
    if (contended && !(clientId !== undefined && this.figures.withinFairShare(clientId))) {
      if (!this.adaptive.freshEffects().admits(priority)) {
        this.refuse('load_shed_strategy', () => new LoadShedError(`strategy ${this.adaptive.strategy}: only high priority is admitted`, retryAfterMs));
      }
      const fill = queue.waiting / this.queue.maxQueueSize;
      if (shouldShed(fill, this.config.queueRejectionThreshold, priority, this.random)) {
        this.refuse('load_shed_queue', () => new LoadShedError(`queue ${Math.round(fill * 100)}% full`, retryAfterMs));
      }
      const abandonedUse = this.adaptive.abandoned.capacityUsed();
      if (shouldShed(abandonedUse, this.config.abandonedRejectionThreshold, priority, this.random)) {
        const resetMs = Math.min(this.adaptive.abandoned.timeUntilResetMs(), this.config.resetIntervalMs / 4);
        this.refuse('load_shed_abandoned', () => new LoadShedError(`${Math.round(abandonedUse * 100)}% of abandoned-request capacity in use`, Math.max(1000, resetMs)));
      }
    }
    const remainingMs = deadlineAt - this.clock.now();
    // A model not learned yet gives no service estimate: a cold start refuses nobody on size.
    const expectedServiceMs = this.serviceTimes.estimateMs(model, size ?? {});
    const estimatedMs = this.figures.estimateWaitMs(priority) + (expectedServiceMs ?? 0);
    if (estimatedMs > remainingMs) {
      this.refuse('deadline_unreachable', () => new DeadlineUnreachableError(Math.round(estimatedMs), remainingMs, retryAfterMs));
    }
    // Travels with the request, so that once it runs, the wait estimate knows when its slot frees.
    return { expectedServiceMs };
  }
}
