import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Job, type Queue } from 'bullmq';
import { createHash, randomUUID } from 'node:crypto';
import type { Priority } from '../common/priority';
import { Listeners } from '../common/listeners';
import { Clock } from '../common/clock';
import { KeyQueueShareExceededError, LoadShedError, QueueFullError } from '../common/errors';
import { DeadlineExceededError, withDeadline } from '../common/deadline';
import { ShutdownService } from '../common/shutdown.service';
import { queueConfig } from '../config/sections';
import { UpstreamDispatcher } from '../dispatch/upstream-dispatcher';
import { RedisService } from '../redis/redis.service';
import type { InferencePayload } from '../upstream/upstream.types';
import { DeliveredAnswer, DeliveryService } from '../delivery/delivery.service';
import { bullPriority, INFERENCE_QUEUE, InferenceJobData, InferenceJobResult } from './inference-job';
import { QueueFigures } from './queue-figures.service';
import { QueuedJobWait, QueueStatus } from './queued-wait';
import { CancellationService } from '../cancellation/cancellation.service';
import { SlotService } from './slot.service';
import { TracingService } from '../tracing/tracing.service';
import type { Admission } from './admission';
import type { JobTokens } from '../auth/token-usage.service';

/** Longest wait for Redis to admit a request. */
const ADMIT_TIMEOUT_MS = 2000;
/**
 * Redis time a queued job's add has to land and be confirmed in; later, it never runs. The caller waits
 * this long plus the admission's round trip (which bounds how much earlier Redis started the window), so
 * when it gives up and answers 503, the window has closed in Redis too.
 */
const COMMIT_WINDOW_MS = 2000;

/** A request on its way into the queue core, with the admission decision made for it. */
export interface QueuedRequest {
  admission: Admission;
  payload: InferencePayload;
  requestId: string;
  /** Told about once a second where the request stands while it waits in the queue, from when it is queued. */
  onWaiting?: (status: QueueStatus) => void;
  /** A job's token accounting (jobs API, background responses), settled by the worker that finishes it. */
  tokens?: JobTokens;
}

export interface RunningAnswer {
  answer: DeliveredAnswer;
  queueWaitMs: number;
  /** Call once the answer has been written (or abandoned): frees the slot or the delivery. */
  release(): void;
}

/** An async job as submitted: new, or the one an earlier call with the same Idempotency-Key made. */
export interface SubmittedJob {
  job?: Job<InferenceJobData, InferenceJobResult>;
  id: string;
  replayed: boolean;
}

/**
 * The queue core's entry: admission into the global bounds and the queue in one atomic step in Redis,
 * then either the fast lane (a free slot and nobody of equal or higher priority waiting: the request runs
 * here at once, no queue round trip) or the BullMQ priority queue, from which any instance's worker takes
 * it when a slot frees. Async jobs always go through the queue, which keeps them durable.
 */
@Injectable()
export class QueueService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(QueueService.name);
  private readonly waiting: QueuedJobWait;
  private readonly admittedListeners = new Listeners<[Priority]>('admitted', this.logger);

  constructor(
    @InjectQueue(INFERENCE_QUEUE) private readonly queue: Queue<InferenceJobData, InferenceJobResult>,
    @Inject(queueConfig.KEY) private readonly config: ConfigType<typeof queueConfig>,
    private readonly delivery: DeliveryService,
    private readonly cancellation: CancellationService,
    private readonly figures: QueueFigures,
    private readonly slots: SlotService,
    private readonly dispatcher: UpstreamDispatcher,
    private readonly shutdown: ShutdownService,
    private readonly redis: RedisService,
    private readonly clock: Clock,
    private readonly tracing: TracingService,
  ) {
    this.waiting = new QueuedJobWait(queue, cancellation, slots, figures, redis, clock);
  }

  onApplicationBootstrap(): void {
    this.redis.reportErrors(this.queue, 'queue');
  }

  onApplicationShutdown(): void {
    this.waiting.stop();
  }

  /**
   * Called with the priority of every request the queue core accepted: once it holds a slot on the fast
   * lane, or once its add into the queue is confirmed. A request refused at any step before is never counted.
   */
  onAdmitted(listener: (priority: Priority) => void): void {
    this.admittedListeners.add(listener);
  }

  /** Runs a request (fast lane or through the queue) and waits, within its deadline, for its answer. */
  async run(request: QueuedRequest, signal: AbortSignal): Promise<RunningAnswer> {
    const id = randomUUID();
    const fastLane = this.config.workerEnabled && !this.shutdown.draining;
    const admitted = await this.admit(id, request.admission, fastLane);
    if (admitted.kind === 'fast') {
      this.admittedListeners.emit(request.admission.priority);
      return this.runHere(id, request, signal);
    }
    if (admitted.kind === 'duplicate') throw new Error(`job id ${id} exists already`);
    const enqueuedAt = this.clock.now();
    const pending = this.delivery.expect(id);
    try {
      await this.add(id, { ...this.jobData(request, enqueuedAt), mode: 'sync', origin: this.delivery.instanceId }, admitted);
      this.admittedListeners.emit(request.admission.priority);
      const answer = await this.waiting.answer(id, pending, signal, enqueuedAt, request.onWaiting);
      const startedAt = pending.startedAt() ?? this.clock.now();
      const release = () => {
        // The handler leaves before the whole answer arrived (a client gone mid-stream): stop the work
        // wherever it runs, so the upstream call and its slot end now rather than with the stream.
        if (!pending.complete()) void this.cancellation.cancel(id).catch(() => undefined);
        pending.dispose();
      };
      return { answer, queueWaitMs: Math.max(0, startedAt - enqueuedAt), release };
    } catch (error) {
      pending.dispose();
      throw error;
    }
  }

  /**
   * Queues an async job (jobs API); answers at once. With an `idempotencyKey`, a second submission by
   * the same client answers with the first one's job and runs nothing. `background`: the job is the
   * background response of that id (its worker records the answer, streamed or not, in responses/).
   */
  async submit(request: QueuedRequest, idempotencyKey?: string, background?: { id: string }): Promise<SubmittedJob> {
    const id = background?.id ?? (idempotencyKey ? idempotentJobId(request.admission.client.id, idempotencyKey) : randomUUID());
    const data: InferenceJobData = background
      ? { ...this.jobData(request, this.clock.now()), mode: 'background', origin: this.delivery.instanceId }
      : {
          ...this.jobData(request, this.clock.now()),
          // A job's answer is stored, not relayed: never a stream.
          stream: false,
          body: { ...request.payload.body, stream: false },
          mode: 'async',
          origin: this.delivery.instanceId,
        };
    const admitted = await this.admit(id, request.admission, false, idempotencyKey !== undefined);
    if (admitted.kind === 'duplicate') return { id, replayed: true, job: await this.queue.getJob(id) };
    if (admitted.kind === 'fast') throw new Error('async jobs never take the fast lane');
    // Two submissions racing with one key both reach here; BullMQ adds one job under that id.
    const job = await this.add(id, data, admitted);
    this.admittedListeners.emit(request.admission.priority);
    return { id, job, replayed: false };
  }

  private jobData(request: QueuedRequest, enqueuedAt: number): Omit<InferenceJobData, 'mode' | 'origin'> {
    const { admission } = request;
    return {
      requestId: request.requestId,
      clientId: admission.client.id,
      priority: admission.priority,
      path: request.payload.path,
      model: request.payload.model,
      body: request.payload.body,
      stream: request.payload.stream,
      affinityKey: request.payload.affinityKey,
      enqueuedAt,
      deadlineAt: admission.deadlineAt,
      retriesAllowed: admission.retriesAllowed,
      keyMaxConcurrent: admission.client.maxRunning > 0 ? admission.client.maxRunning : undefined,
      expectedServiceMs: admission.expectedServiceMs,
      // The worker, on whichever instance, continues the request's trace.
      traceparent: this.tracing.carrier(),
      tokens: request.tokens,
    };
  }

  /** The exact admission step in Redis; refuses with the contract's errors. */
  private async admit(id: string, admission: Admission, fastLane: boolean, mayExist = false) {
    if (!this.redis.ready) throw new LoadShedError('the queue store (Redis) is unreachable', 5000);
    let admitted;
    const sentAt = this.clock.now();
    try {
      const options = { fastLane, commitWindowMs: COMMIT_WINDOW_MS, mayExist, expectedServiceMs: admission.expectedServiceMs };
      admitted = await withDeadline(this.slots.admit(id, admission.priority, admission.client, options), ADMIT_TIMEOUT_MS);
    } catch (error) {
      this.logger.warn(`could not admit a request: ${(error as Error).message}`);
      throw new LoadShedError('the queue store (Redis) did not answer', 5000);
    }
    if (admitted.kind === 'full') throw new QueueFullError(admitted.waiting, this.config.maxQueueSize, this.figures.retryAfterMs());
    if (admitted.kind === 'key_share') {
      throw new KeyQueueShareExceededError(admitted.keyWaiting, admission.client.maxWaiting, this.figures.retryAfterMs(admitted.keyWaiting));
    }
    if (admitted.kind === 'queued') {
      this.figures.jobQueued(admission.priority, admission.expectedServiceMs);
      return { ...admitted, addDeadlineMs: COMMIT_WINDOW_MS + (this.clock.now() - sentAt) };
    }
    return admitted;
  }

  /** Fast lane: the slot is held already; call the upstream from here, the caller's signal in charge. */
  private async runHere(lease: string, request: QueuedRequest, signal: AbortSignal): Promise<RunningAnswer> {
    const { admission } = request;
    const startedAt = this.clock.now();
    this.figures.jobStarted(admission.priority, 0, { queue: false });
    const untrack = this.figures.trackRunning(admission.expectedServiceMs);
    this.tracing.recordSpan('queue wait', this.tracing.carrier(), startedAt, startedAt, {
      'bulwark.priority': admission.priority,
      'bulwark.queue_wait_ms': 0,
      'bulwark.fast_lane': true,
    });
    let released = false;
    const release = (served: boolean) => {
      if (released) return;
      released = true;
      untrack();
      this.figures.jobFinished(served ? this.clock.now() - startedAt : undefined);
      void this.slots.release(lease);
    };
    try {
      const served = await this.dispatcher.dispatch(request.payload, { signal, deadlineAt: admission.deadlineAt, retriesAllowed: admission.retriesAllowed });
      if (served.kind === 'json') {
        // The upstream is done with it: the slot is free before the answer is even written.
        release(true);
        return { answer: { kind: 'json', status: served.status, body: served.body, upstream: served.upstream, model: served.model, hedged: served.hedged }, queueWaitMs: 0, release: () => undefined };
      }
      const events = concatEvents(served.first, served.rest);
      return { answer: { kind: 'stream', events, upstream: served.upstream, model: served.model, hedged: served.hedged }, queueWaitMs: 0, release: () => release(true) };
    } catch (error) {
      release(false);
      throw error;
    }
  }

  /**
   * Adds a job whose queue place is reserved, and confirms it, in one round trip. An add that does not
   * land in its commit window is answered 503 and never runs, even if it lands later (its commit key has
   * lapsed in Redis, and workers drop uncommitted jobs): a caller told "no" never has its request run.
   */
  private async add(
    id: string,
    data: InferenceJobData,
    admitted: { freeSlots: number; addDeadlineMs: number; fairTag: number },
  ): Promise<Job<InferenceJobData, InferenceJobResult>> {
    const sync = data.mode === 'sync';
    const job = new Job<InferenceJobData, InferenceJobResult>(
      this.queue,
      INFERENCE_QUEUE,
      data,
      {
        jobId: id,
        // The band, then the fair-share start tag: within a priority, client keys take turns by weight.
        priority: bullPriority(data.priority, admitted.fairTag),
        attempts: 1,
        removeOnComplete: sync ? true : { age: Math.ceil(this.config.jobResultTtlMs / 1000) },
        // Sync failures were answered to their caller; async ones stay as dead letters.
        removeOnFail: sync ? true : false,
      },
      id,
    );
    // The commit lives as long as the job may still run: its deadline, and a margin for clock skew.
    const adding = this.slots.addCommitted(job, data.deadlineAt - this.clock.now() + 60_000);
    adding.catch(() => undefined);
    let committed;
    try {
      committed = await withDeadline(adding, admitted.addDeadlineMs);
    } catch (error) {
      if (!(error instanceof DeadlineExceededError)) this.refuseAdd(id, error);
      // Its commit window has closed in Redis by now: the add and its commit either landed in it (the job
      // runs) or will land late (it never runs). Only their reply says which, so it is awaited, within the
      // request's own deadline.
      committed = await withDeadline(adding, Math.max(1, data.deadlineAt - this.clock.now())).catch((late: unknown) => this.refuseAdd(id, late));
    }
    if (committed !== 'committed') this.refuseAdd(id, new Error(committed === 'late' ? 'the add landed after its commit window' : 'the add did not land'));
    // A slot is free while the job waits (it could not take the fast lane): wake whoever can run it.
    if (admitted.freeSlots > 0) this.slots.wakeWorkers();
    return job;
  }

  private refuseAdd(id: string, error: unknown): never {
    void this.slots.forget(id).catch(() => undefined);
    this.logger.warn(`could not queue job: ${(error as Error).message}`);
    throw new LoadShedError('the queue store (Redis) did not accept the request in time', 5000);
  }

}

/** A job id that is the same for the same client and Idempotency-Key, and reveals neither. */
export function idempotentJobId(clientId: string, key: string): string {
  return 'idem-' + createHash('sha256').update(`${clientId}\u0000${key}`).digest('hex').slice(0, 40);
}

async function* concatEvents(first: string[], rest: AsyncIterable<string>): AsyncIterable<string> {
  yield* first;
  yield* rest;
}
