import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Job, Worker } from 'bullmq';
import { RedisService } from '../redis/redis.service';
import { Clock } from '../common/clock';
import { toErrorResponse } from '../common/error-response';
import { CancelledError, QueueTimeoutError, RequestTimeoutError } from '../common/errors';
import { queueConfig, serverConfig } from '../config/sections';
import { ShutdownService } from '../common/shutdown.service';
import { UpstreamDispatcher } from '../dispatch/upstream-dispatcher';
import { DeliveryService } from './delivery.service';
import { INFERENCE_QUEUE, InferenceJobData, InferenceJobResult } from './inference-job';
import { QueueFigures } from './queue-figures.service';

/**
 * The worker: runs queued requests on any instance, within BullMQ's global concurrency. Drops a job
 * whose deadline passed without touching the upstream; otherwise dispatches it (breakers, retries,
 * fallbacks) and delivers the answer to whoever waits.
 *
 * The BullMQ Worker is built here rather than with @Processor(): its lock and concurrency come from
 * typed config, which a decorator (evaluated at import time) cannot read.
 */
@Injectable()
export class InferenceProcessor implements OnApplicationBootstrap, OnApplicationShutdown {
  private worker?: Worker<InferenceJobData, InferenceJobResult>;
  private readonly logger = new Logger(InferenceProcessor.name);

  constructor(
    private readonly dispatcher: UpstreamDispatcher,
    private readonly delivery: DeliveryService,
    private readonly figures: QueueFigures,
    private readonly clock: Clock,
    private readonly shutdown: ShutdownService,
    private readonly redis: RedisService,
    @Inject(queueConfig.KEY) private readonly config: ConfigType<typeof queueConfig>,
    @Inject(serverConfig.KEY) private readonly server: ConfigType<typeof serverConfig>,
  ) {}

  private closing?: Promise<void>;
  private drainStartedAt?: number;

  onApplicationBootstrap(): void {
    if (!this.config.workerEnabled) {
      this.logger.log('WORKER_ENABLED=false: this instance queues work but runs none');
      return;
    }
    const worker = new Worker<InferenceJobData, InferenceJobResult>(INFERENCE_QUEUE, (job) => this.process(job), {
      connection: this.redis.bullConnection('worker'),
      prefix: 'bulwark',
      concurrency: this.config.maxConcurrent,
      lockDuration: this.config.lockMs,
      stalledInterval: Math.max(500, Math.floor(this.config.lockMs / 2)),
      // A job whose worker died is run once more by another instance, then fails for good.
      maxStalledCount: 1,
    });
    this.worker = worker;
    this.redis.reportErrors(worker, 'worker');
    // Draining: take no new jobs, let the running ones finish within the grace period.
    this.shutdown.onDrain(() => {
      this.drainStartedAt = this.clock.now();
      this.closing ??= worker.close();
    });
  }

  async onApplicationShutdown(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.closing ??= worker.close();
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      this.closing.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.remainingGraceMs()))),
    ]);
    clearTimeout(timer);
    if (!finished) {
      // Jobs cut off here keep their lock until it expires; another instance then recovers them as stalled.
      this.logger.warn('jobs still running after the grace period: closing the worker by force');
      await worker.close(true);
    }
  }

  private remainingGraceMs(): number {
    const spent = this.drainStartedAt === undefined ? 0 : this.clock.now() - this.drainStartedAt;
    return Math.max(0, this.server.shutdownGraceMs - spent);
  }

  async process(job: Job<InferenceJobData>): Promise<InferenceJobResult> {
    const data = job.data;
    const jobId = String(job.id);
    const startedAt = this.clock.now();
    const queueWaitMs = startedAt - data.enqueuedAt;
    this.figures.jobStarted(data.priority, queueWaitMs);
    if (startedAt >= data.deadlineAt) {
      this.figures.jobFinished(undefined);
      await this.delivery.fail(data.origin, jobId, new QueueTimeoutError(queueWaitMs));
      return { outcome: 'expired', queueWaitMs };
    }
    const controller = new AbortController();
    const timeoutMs = data.deadlineAt - data.enqueuedAt;
    const timer = setTimeout(() => controller.abort(new RequestTimeoutError(timeoutMs)), data.deadlineAt - startedAt);
    const untrack = this.delivery.track(jobId, controller);
    // Only completed work says how long a job holds its slot; failures and cut-offs would skew the estimate.
    let served = false;
    try {
      await this.delivery.started(data.origin, jobId, startedAt);
      const answer = await this.dispatcher.dispatch(
        { path: data.path, model: data.model, body: data.body, stream: data.stream },
        { signal: controller.signal, deadlineAt: data.deadlineAt, retriesAllowed: data.retriesAllowed },
      );
      if (data.mode === 'async') {
        const durationMs = this.clock.now() - startedAt;
        if (answer.kind !== 'json') throw new Error('async jobs are never streamed');
        served = true;
        return { outcome: 'succeeded', status: answer.status, body: answer.body, upstream: answer.upstream, model: answer.model, queueWaitMs, durationMs };
      }
      await this.delivery.deliver(data.origin, jobId, answer);
      served = true;
      return { outcome: 'succeeded', status: answer.status, upstream: answer.upstream, model: answer.model, queueWaitMs, durationMs: this.clock.now() - startedAt };
    } catch (error) {
      const reason = controller.signal.aborted ? controller.signal.reason : error;
      if (reason instanceof CancelledError) return { outcome: 'cancelled', queueWaitMs };
      if (data.mode === 'sync') {
        await this.delivery.fail(data.origin, jobId, reason).catch(() => undefined);
        // The caller has its answer; a sync request's failure is not an operator's dead letter.
        const { message, type, code } = toErrorResponse(reason).body.error;
        return { outcome: 'failed', queueWaitMs, error: { message, type, code } };
      }
      // BullMQ keeps only a message for failed jobs: carry the contract-shaped error in it.
      throw new Error(JSON.stringify(toErrorResponse(reason)));
    } finally {
      clearTimeout(timer);
      untrack();
      this.figures.jobFinished(served ? this.clock.now() - startedAt : undefined);
    }
  }
}
