import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Clock } from '../common/clock';
import { Listeners } from '../common/listeners';
import { CircuitOpenError, DeadlineUnreachableError, KeyQueueShareExceededError, LoadShedError, NotFoundError, QueueFullError, withoutStack } from '../common/errors';
import { RandomSource } from '../common/random';
import { adaptiveConfig, queueConfig } from '../config/sections';
import { UpstreamDispatcher } from '../dispatch/upstream-dispatcher';
import type { Admission } from '../queue/admission';
import { QueueFigures } from '../queue/queue-figures.service';
import { QueueService } from '../queue/queue.service';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import { AdaptiveService } from './adaptive.service';
import { shouldShed } from './graduated-rejection';
import { Priority } from '../common/priority';
import type { RequestSize } from './service-time-model';
import { ServiceTimes } from './service-times.service';

const REFUSAL_SUMMARY_MS = 10_000;

export interface AdmissionRequest {
  priority: Priority;
  model: string | undefined;
  deadlineAt: number;
  /** Output-token limit and prompt length, for the request's own service time. */
  size?: RequestSize;
  /** The client key: shedding spares a key within its fair share of the queue; its caps bound it. */
  client: {
    /** Non-secret id of the key. */
    id: string;
    weight: number;
    /** Most requests of the key running at once, across instances (unset: no cap of its own). */
    maxConcurrent?: number;
    /** Largest fraction of MAX_QUEUE_SIZE the key may hold waiting (unset: no cap of its own). */
    queueShare?: number;
  };
}

export type RejectionReason = 'queue_full' | 'load_shed_queue' | 'load_shed_abandoned' | 'load_shed_strategy' | 'deadline_unreachable' | 'circuit_open' | 'store_unavailable';

/**
 * Admission control, from cached figures only (no Redis round trip). At the door
 * ({@link refusalForAll}, {@link refusalForKey}), the refusals that apply to every request (store away,
 * queue full, abandoned capacity exhausted) and to every request of a key at its share of the queue;
 * then in the guard ({@link decide}): unknown model, every upstream open; only while there is contention (requests waiting or no free slot), the
 * strategy's rule and graduated shedding on queue fill and abandoned capacity; last, deadlines that the
 * estimated queue wait plus the request's own estimated service time cannot meet. What it admits is one
 * {@link Admission} that the queue core applies exactly in Redis.
 *
 * Deciding counts refusals only; an admission is counted when the queue core says it accepted the
 * request, so a request refused later (a 400 from the body's validation, a full queue at enqueue) never
 * counts as admitted.
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
    queueCore: QueueService,
  ) {
    queueCore.onAdmitted((priority) => this.recordAdmitted(priority));
  }

  onRejection(listener: (reason: RejectionReason) => void): void {
    this.rejectionListeners.add(listener);
  }

  /** Called with the priority of every admitted request (metrics, dashboard). */
  onAdmission(listener: (priority: Priority) => void): void {
    this.admissionListeners.add(listener);
  }

  private recordAdmitted(priority: Priority): void {
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
    if (queue.waiting >= this.queue.maxQueueSize) {
      this.noteRefusal('queue_full');
      return withoutStack(() => new QueueFullError(queue.waiting, this.queue.maxQueueSize, this.figures.retryAfterMs()));
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
   * At the door too: a client key that holds its share of the queue already (cached figures), refused
   * as cheaply as a full queue. `client` is asked for only while requests wait (it costs a key lookup).
   */
  refusalForKey(client: () => AdmissionRequest['client'] | undefined): Error | undefined {
    if (this.figures.snapshot().waiting === 0) return undefined;
    const caller = client();
    if (!caller) return undefined;
    const maxWaiting = this.maxWaitingOf(caller);
    const keyWaiting = this.figures.waitingOf(caller.id);
    if (maxWaiting === 0 || keyWaiting < maxWaiting) return undefined;
    return withoutStack(() => new KeyQueueShareExceededError(keyWaiting, maxWaiting, this.figures.retryAfterMs(keyWaiting)));
  }

  private maxWaitingOf(client: Pick<AdmissionRequest['client'], 'queueShare'>): number {
    return client.queueShare ? Math.max(1, Math.floor(client.queueShare * this.queue.maxQueueSize)) : 0;
  }

  /**
   * The admission decision for a request that passed the door: throws the typed refusal (and counts it),
   * or returns the {@link Admission} that travels with the request to the queue core.
   */
  decide({ priority, model, deadlineAt, size, client }: AdmissionRequest): Admission {
    const queue = this.figures.snapshot();
    const retryAfterMs = this.figures.retryAfterMs();
    if (typeof model === 'string' && !this.registry.knows(model)) {
      throw new NotFoundError('model_not_found', `The model \`${model.slice(0, 256)}\` does not exist`, 'model');
    }
    // The most specific refusal first: every upstream of the model is open (the strategy follows from it).
    if (typeof model === 'string') {
      const availability = this.dispatcher.availability(model);
      if (!availability.available) this.refuse('circuit_open', () => new CircuitOpenError(model, availability.retryInMs));
    }
    const maxWaiting = this.maxWaitingOf(client);
    // Restrictions exist to protect work in progress: with nobody waiting and a slot free, the request
    // harms no one, whatever the strategy says (no free slot is ever wasted after an overload burst).
    const contended = queue.waiting > 0 || queue.active >= this.queue.maxConcurrent;
    // Under contention shedding falls first on keys above their fair share: a key that holds less of the
    // queue than its share, while another holds more, is not shed (fair ordering then serves it soon).
    if (contended && !this.figures.withinFairShare(client.id)) {
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
    return {
      priority,
      client: { id: client.id, weight: client.weight, maxWaiting, maxRunning: client.maxConcurrent ?? 0 },
      deadlineAt,
      expectedServiceMs,
      retriesAllowed: this.adaptive.effects().retriesAllowed,
    };
  }
}
