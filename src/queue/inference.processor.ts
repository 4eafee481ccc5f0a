import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Job } from 'bullmq';
import { Clock } from '../common/clock';
import { toErrorResponse } from '../common/error-response';
import { CancelledError, QueueTimeoutError, RequestTimeoutError } from '../common/errors';
import { queueConfig } from '../config/sections';
import { UpstreamDispatcher } from '../dispatch/upstream-dispatcher';
import { DeliveryService } from './delivery.service';
import { INFERENCE_QUEUE, InferenceJobData, InferenceJobResult } from './inference-job';
import { QueueFigures } from './queue-figures.service';

/**
 * The worker: runs queued requests on any instance, within BullMQ's global concurrency. Drops a job
 * whose deadline passed without touching the upstream; otherwise dispatches it (breakers, retries,
 * fallbacks) and delivers the answer to whoever waits.
 */
@Processor(INFERENCE_QUEUE, { autorun: false })
export class InferenceProcessor extends WorkerHost implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(InferenceProcessor.name);

  constructor(
    private readonly dispatcher: UpstreamDispatcher,
    private readonly delivery: DeliveryService,
    private readonly figures: QueueFigures,
    private readonly clock: Clock,
    @Inject(queueConfig.KEY) private readonly config: ConfigType<typeof queueConfig>,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    // Set from typed config here, not in @Processor(): decorators are evaluated at import time.
    this.worker.concurrency = this.config.maxConcurrent;
    Object.assign(this.worker.opts, {
      lockDuration: this.config.lockMs,
      stalledInterval: Math.max(500, Math.floor(this.config.lockMs / 2)),
      maxStalledCount: 1,
      drainDelay: 1,
    });
    this.worker.on('error', (error) => this.logger.warn(`worker: ${error.message}`));
    void this.worker.run().catch((error: Error) => this.logger.error(`worker stopped: ${error.message}`));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.worker.close();
  }

  async process(job: Job<InferenceJobData>): Promise<InferenceJobResult> {
    const data = job.data;
    const jobId = String(job.id);
    const startedAt = this.clock.now();
    const queueWaitMs = startedAt - data.enqueuedAt;
    this.figures.jobStarted(queueWaitMs);
    if (startedAt >= data.deadlineAt) {
      this.figures.jobFinished(undefined);
      await this.delivery.fail(data.origin, jobId, new QueueTimeoutError(queueWaitMs));
      return { outcome: 'expired', queueWaitMs };
    }
    const controller = new AbortController();
    const timeoutMs = data.deadlineAt - data.enqueuedAt;
    const timer = setTimeout(() => controller.abort(new RequestTimeoutError(timeoutMs)), data.deadlineAt - startedAt);
    const untrack = this.delivery.track(jobId, controller);
    try {
      await this.delivery.started(data.origin, jobId, startedAt);
      const answer = await this.dispatcher.dispatch(
        { path: data.path, model: data.model, body: data.body, stream: data.stream },
        { signal: controller.signal, deadlineAt: data.deadlineAt, retriesAllowed: data.retriesAllowed },
      );
      if (data.mode === 'async') {
        const durationMs = this.clock.now() - startedAt;
        if (answer.kind !== 'json') throw new Error('async jobs are never streamed');
        return { outcome: 'succeeded', status: answer.status, body: answer.body, upstream: answer.upstream, model: answer.model, queueWaitMs, durationMs };
      }
      await this.delivery.deliver(data.origin, jobId, answer);
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
      this.figures.jobFinished(this.clock.now() - startedAt);
    }
  }
}
