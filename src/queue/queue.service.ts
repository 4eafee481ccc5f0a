import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Job, Queue } from 'bullmq';
import { randomUUID } from 'node:crypto';
import type { Priority } from '../adaptive/graduated-rejection';
import { Clock } from '../common/clock';
import { LoadShedError, QueueFullError, QueueTimeoutError, RequestTimeoutError, UpstreamError } from '../common/errors';
import { queueConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import type { InferencePayload } from '../upstream/upstream.types';
import { DeliveredAnswer, DeliveryService } from './delivery.service';
import { BULL_PRIORITY, INFERENCE_QUEUE, InferenceJobData, InferenceJobResult } from './inference-job';
import { QueueFigures } from './queue-figures.service';

const ADD_TIMEOUT_MS = 2000;
/** How often a handler that has heard nothing checks that its job still exists. */
const WATCHDOG_MS = 5000;

export interface QueuedRequest {
  payload: InferencePayload;
  requestId: string;
  clientId: string;
  priority: Priority;
  deadlineAt: number;
  retriesAllowed: boolean;
}

export interface RunningAnswer {
  answer: DeliveredAnswer;
  queueWaitMs: number;
  /** Call once the answer has been written (or abandoned): frees the delivery slot. */
  release(): void;
}

/**
 * Puts upstream-bound work through the BullMQ priority queue. Sync requests wait for their answer
 * (delivered in memory or through Redis); async jobs are stored for the jobs API.
 */
@Injectable()
export class QueueService implements OnApplicationBootstrap {
  private readonly logger = new Logger(QueueService.name);

  constructor(
    @InjectQueue(INFERENCE_QUEUE) private readonly queue: Queue<InferenceJobData, InferenceJobResult>,
    @Inject(queueConfig.KEY) private readonly config: ConfigType<typeof queueConfig>,
    private readonly delivery: DeliveryService,
    private readonly figures: QueueFigures,
    private readonly redis: RedisService,
    private readonly clock: Clock,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.redis.reportErrors(this.queue, 'queue');
    // BullMQ's global concurrency makes MAX_CONCURRENT_REQUESTS hold across every instance.
    await this.queue.setGlobalConcurrency(this.config.maxConcurrent);
  }

  /** Queues a request and waits, within its deadline, until a worker answers it. */
  async run(request: QueuedRequest, signal: AbortSignal): Promise<RunningAnswer> {
    const jobId = randomUUID();
    const enqueuedAt = this.clock.now();
    const pending = this.delivery.expect(jobId);
    try {
      await this.add(jobId, { ...this.jobData(request, enqueuedAt), mode: 'sync', origin: this.delivery.instanceId }, true);
      const answer = await this.await(jobId, pending.answer, signal, () => pending.startedAt(), enqueuedAt);
      const startedAt = pending.startedAt() ?? this.clock.now();
      return { answer, queueWaitMs: Math.max(0, startedAt - enqueuedAt), release: () => pending.dispose() };
    } catch (error) {
      pending.dispose();
      throw error;
    }
  }

  /** Queues an async job (jobs API); answers at once. */
  async submit(request: QueuedRequest): Promise<Job<InferenceJobData, InferenceJobResult>> {
    const jobId = randomUUID();
    const data: InferenceJobData = {
      ...this.jobData(request, this.clock.now()),
      // A job's answer is stored, not relayed: never a stream.
      stream: false,
      body: { ...request.payload.body, stream: false },
      mode: 'async',
      origin: this.delivery.instanceId,
    };
    return this.add(jobId, data, false);
  }

  private jobData(request: QueuedRequest, enqueuedAt: number): Omit<InferenceJobData, 'mode' | 'origin'> {
    return {
      requestId: request.requestId,
      clientId: request.clientId,
      priority: request.priority,
      path: request.payload.path,
      model: request.payload.model,
      body: request.payload.body,
      stream: request.payload.stream,
      enqueuedAt,
      deadlineAt: request.deadlineAt,
      retriesAllowed: request.retriesAllowed,
    };
  }

  private async add(jobId: string, data: InferenceJobData, sync: boolean): Promise<Job<InferenceJobData, InferenceJobResult>> {
    if (!this.redis.ready) throw new LoadShedError('the queue store (Redis) is unreachable', 5000);
    const snapshot = this.figures.snapshot();
    if (snapshot.waiting >= this.config.maxQueueSize) {
      throw new QueueFullError(snapshot.waiting, this.config.maxQueueSize, 1000);
    }
    // Reserve the place before the first await, so a burst on this instance cannot overshoot the bound.
    this.figures.jobAdded(data.priority);
    let timer: NodeJS.Timeout | undefined;
    try {
      const job = await Promise.race([
        this.queue.add(INFERENCE_QUEUE, data, {
          jobId,
          priority: BULL_PRIORITY[data.priority],
          attempts: 1,
          removeOnComplete: sync ? true : { age: Math.ceil(this.config.jobResultTtlMs / 1000) },
          // Sync failures were answered to their caller; async ones stay as dead letters.
          removeOnFail: sync ? true : false,
        }),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('queue add timed out')), ADD_TIMEOUT_MS))),
      ]);
      return job;
    } catch (error) {
      this.figures.jobAddFailed(data.priority);
      this.logger.warn(`could not queue job: ${(error as Error).message}`);
      throw new LoadShedError('the queue store (Redis) did not accept the request', 5000);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Waits for a sync job's answer, its caller's signal, or proof that the job is gone. On abort, a job
   * still waiting is removed (it never reaches the upstream); a running one is cancelled where it runs.
   */
  private async await(
    jobId: string,
    answer: Promise<DeliveredAnswer>,
    signal: AbortSignal,
    startedAt: () => number | undefined,
    enqueuedAt: number,
  ): Promise<DeliveredAnswer> {
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
      return await Promise.race([answer, aborted, lost]);
    } catch (error) {
      if (signal.aborted && error === signal.reason) {
        throw await this.abandon(jobId, signal.reason, startedAt() !== undefined, enqueuedAt);
      }
      throw error;
    } finally {
      clearInterval(watchdog);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** The caller stopped waiting: take the job back and say why. */
  private async abandon(jobId: string, reason: unknown, started: boolean, enqueuedAt: number): Promise<unknown> {
    let removed = false;
    if (!started) {
      removed = await this.queue
        .remove(jobId)
        .then((count) => count > 0)
        .catch(() => false);
    }
    if (!removed) await this.delivery.cancel(jobId).catch(() => undefined);
    if (reason instanceof RequestTimeoutError && removed) return new QueueTimeoutError(this.clock.now() - enqueuedAt);
    return reason;
  }
}
