import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Job, Worker } from 'bullmq';
import type Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { AnswerUsage, usageOfBody } from '../auth/answer-usage';
import { TokenUsageService } from '../auth/token-usage.service';
import { Clock } from '../common/clock';
import { settleWithin } from '../common/deadline';
import { toErrorResponse } from '../common/error-response';
import { CancelledError, LoadShedError, QueueTimeoutError, RequestTimeoutError, ShuttingDownError } from '../common/errors';
import { ShutdownService } from '../common/shutdown.service';
import { queueConfig } from '../config/sections';
import { UpstreamDispatcher } from '../dispatch/upstream-dispatcher';
import { RedisService } from '../redis/redis.service';
import { CancellationService } from '../cancellation/cancellation.service';
import { DeliveryService } from '../delivery/delivery.service';
import { fairTagOf, INFERENCE_QUEUE, InferenceJobData, InferenceJobResult } from './inference-job';
import { QueueFigures } from './queue-figures.service';
import { SlotService, SlotTaker } from './slot.service';
import { TracingService } from '../tracing/tracing.service';
import { ResponseStore } from '../responses/response-store';
import { BackgroundRun } from './background-run';

/** How long a job whose client key is at its concurrency cap is put back before it is tried again. */
const KEY_CAP_RETRY_MS = 100;
/** How long handing back jobs at the end of the grace period may take. */
const HAND_BACK_MS = 5000;

interface RunningJob {
  job: Job<InferenceJobData, InferenceJobResult>;
  token: string;
  settled: Promise<void>;
}

/**
 * The worker: takes queued requests with BullMQ's manual fetching, one global slot lease each, and runs
 * them. Drops a job that must not run (its add was refused, its sync caller's instance is gone) or whose
 * deadline passed, without touching the upstream; otherwise dispatches it (breakers, retries, fallbacks)
 * and delivers the answer to whoever waits. A job cut off by shutdown is handed back to the queue.
 */
@Injectable()
export class InferenceProcessor implements OnApplicationBootstrap, OnApplicationShutdown, SlotTaker {
  private readonly logger = new Logger(InferenceProcessor.name);
  private worker?: Worker<InferenceJobData, InferenceJobResult>;
  private readonly running = new Map<string, RunningJob>();
  private pulling = false;
  private pullAgain = false;
  private draining = false;

  constructor(
    private readonly dispatcher: UpstreamDispatcher,
    private readonly delivery: DeliveryService,
    private readonly cancellation: CancellationService,
    private readonly figures: QueueFigures,
    private readonly slots: SlotService,
    private readonly clock: Clock,
    private readonly shutdown: ShutdownService,
    private readonly redis: RedisService,
    private readonly tracing: TracingService,
    private readonly responses: ResponseStore,
    private readonly tokens: TokenUsageService,
    @Inject(queueConfig.KEY) private readonly config: ConfigType<typeof queueConfig>,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.workerEnabled) {
      this.logger.log('WORKER_ENABLED=false: this instance queues work but runs none');
      return;
    }
    const worker = new Worker<InferenceJobData, InferenceJobResult>(INFERENCE_QUEUE, undefined, {
      connection: this.redis.bullConnection('worker'),
      prefix: 'bulwark',
      autorun: false,
      lockDuration: this.config.lockMs,
      stalledInterval: Math.max(500, Math.floor(this.config.lockMs / 2)),
      // A job whose worker died is run once more by another instance, then fails for good.
      maxStalledCount: 1,
    });
    this.worker = worker;
    this.redis.reportErrors(worker, 'worker');
    void worker.startStalledCheckTimer().catch((error: Error) => this.logger.warn(`stalled-job check: ${error.message}`));
    this.slots.setTaker(this);
    // Also polled: work waiting that nobody was woken for (a lapsed lease, a lost wake-up) is taken too.
    // Work it was not woken for (a lapsed lease, a lost wake-up) shows in the figures; while every slot is
    // taken, the release of one hands it on, so the poll behind the wake channel has nothing to ask Redis.
    this.slots.onWake(() => this.pull(), {
      waiting: () => {
        const { waiting, active } = this.figures.snapshot();
        return waiting > 0 && active < this.config.maxConcurrent;
      },
    });
    this.slots.onRenew(() => this.extendLocks());
    this.shutdown.onDrain(() => (this.draining = true));
    this.shutdown.onGraceOver(() => this.handBack());
    this.pull();
  }

  async onApplicationShutdown(): Promise<void> {
    this.draining = true;
    await this.worker?.close(true).catch(() => undefined);
  }

  canTake(): boolean {
    return this.worker !== undefined && !this.draining && this.running.size < this.config.maxConcurrent;
  }

  take(lease: string): void {
    void this.startNext(lease);
  }

  /** Starts queued jobs while this instance can run more, slots are free and work waits. */
  pull(): void {
    if (this.pulling) {
      this.pullAgain = true;
      return;
    }
    this.pulling = true;
    void (async () => {
      try {
        while (this.canTake()) {
          const { lease } = await this.slots.claim();
          if (!lease || !(await this.startNext(lease))) break;
        }
      } catch (error) {
        this.logger.debug(`pull failed: ${(error as Error).message}`);
      } finally {
        this.pulling = false;
        if (this.pullAgain) {
          this.pullAgain = false;
          this.pull();
        }
      }
    })();
  }

  /** Takes the queue's head under `lease`; false (lease given back) when nothing was there. */
  private async startNext(lease: string): Promise<boolean> {
    const token = randomUUID();
    const job = this.canTake() ? await this.worker!.getNextJob(token, { block: false }).catch(() => undefined) : undefined;
    if (!job) {
      await this.slots.release(lease);
      return false;
    }
    const done = this.shutdown.trackWork();
    const entry = { job, token } as RunningJob;
    this.running.set(String(job.id), entry);
    entry.settled = this.run(job, token, lease).finally(() => {
      this.running.delete(String(job.id));
      done();
    });
    return true;
  }

  /** Extends the BullMQ locks of the jobs running here, in one call (on the slot renewal tick). */
  private async extendLocks(): Promise<void> {
    if (!this.worker || this.running.size === 0) return;
    const entries = [...this.running.values()];
    await this.worker.extendJobLocks(
      entries.map((e) => String(e.job.id)),
      entries.map((e) => e.token),
      this.config.lockMs,
    );
  }

  /** Grace period over: stop what still runs and hand async jobs back to the queue for another instance. */
  private async handBack(): Promise<void> {
    const entries = [...this.running.values()];
    this.cancellation.abortAll(new CancelledError('shutdown'));
    await settleWithin(Promise.allSettled(entries.map((e) => e.settled)), HAND_BACK_MS, []);
  }

  /** Runs a job under `lease` and settles it in BullMQ; the lease is given back at the end, whatever happened. */
  private async run(job: Job<InferenceJobData, InferenceJobResult>, token: string, lease: string): Promise<void> {
    let released = false;
    const spent: JobSpend = { attempts: 0 };
    try {
      const result = await this.process(job, lease, spent);
      if (result === 'hand_back') {
        await job.moveToWait(token);
        this.logger.log({ jobId: job.id }, 'job handed back to the queue at shutdown');
      } else if (result === 'key_at_cap') {
        // Its key runs as many requests as it may: the job waits a moment while others go ahead.
        await job.moveToDelayed(Date.now() + KEY_CAP_RETRY_MS, token);
      } else {
        released = true;
        await this.complete(job, token, lease, result);
        this.endTokens(job.data, result, spent);
      }
    } catch (error) {
      if (error instanceof AsyncJobFailure) {
        await job.moveToFailed(new Error(error.message), token, false).catch((e: Error) => this.logger.warn(`job ${job.id}: ${e.message}`));
        this.endTokens(job.data, undefined, spent);
      } else {
        // The lock was lost (this instance stalled): another worker owns the job now.
        this.logger.warn(`job ${job.id}: ${(error as Error).message}`);
      }
    } finally {
      if (!released) void this.slots.release(lease);
    }
  }

  /**
   * A job (jobs API, background response) has ended here for good: its usage is counted and the token
   * reservation it carries is settled, once, by this worker (a sync request's handler does its own).
   * `result` undefined: it failed.
   */
  private endTokens(data: InferenceJobData, result: InferenceJobResult | undefined, spent: JobSpend): void {
    if (!data.tokens || data.mode === 'sync') return;
    const succeeded = result?.outcome === 'succeeded';
    this.tokens.endJob(data.clientId, data.tokens, succeeded ? result.model : data.model, {
      usage: spent.usage,
      answered: succeeded,
      stream: false,
      upstreamFailed: !succeeded && spent.attempts > 0,
    });
  }

  /** Completes `job` in BullMQ and gives its slot back, in one round trip. */
  private async complete(job: Job<InferenceJobData, InferenceJobResult>, token: string, lease: string, result: InferenceJobResult): Promise<void> {
    const backend = this.worker!.backend;
    const client = (await backend.client) as unknown as Redis;
    const reply = await this.slots.releaseAfter(lease, {
      client,
      queue: (transaction) => backend.execCommand(transaction as never, 'moveToFinished', backend.moveToCompletedArgs(job, JSON.stringify(result) as never, job.opts.removeOnComplete ?? false, token, false)),
      run: () => job.moveToCompleted(result, token, false),
    });
    if (reply instanceof Error) throw reply;
    if (typeof reply === 'number' && reply < 0) throw backend.finishedErrors({ code: reply, jobId: String(job.id), command: 'moveToFinished', state: 'active' });
  }

  /** Runs one job to its result; throws AsyncJobFailure for an async job that failed for good. */
  async process(job: Job<InferenceJobData>, lease: string, spent: JobSpend = { attempts: 0 }): Promise<InferenceJobResult | 'hand_back' | 'key_at_cap'> {
    const data = job.data;
    const jobId = String(job.id);
    const { committed, originAlive, keyAtCap } = await this.slots.bind(jobId, data.priority, fairTagOf(job.priority), data.mode === 'sync' ? data.origin : undefined, lease, {
      id: data.clientId,
      maxRunning: data.keyMaxConcurrent ?? 0,
    });
    if (keyAtCap) return 'key_at_cap';
    if (!committed || !originAlive) {
      // Its add came too late (its caller was told it failed), or its sync caller is gone with its
      // instance: nobody may get an answer from it.
      if (data.mode === 'sync' && originAlive) {
        await this.delivery.fail(data.origin, jobId, new LoadShedError('the queue store (Redis) did not accept the request in time', 5000)).catch(() => undefined);
      }
      return { outcome: 'dropped', queueWaitMs: this.clock.now() - data.enqueuedAt };
    }
    // A background response writes its record and event log from here; it may have ended already (cancelled).
    const background = data.mode === 'background' ? await BackgroundRun.start(this.responses, jobId, data.deadlineAt - this.clock.now()) : undefined;
    if (data.mode === 'background' && !background) return { outcome: 'cancelled', queueWaitMs: this.clock.now() - data.enqueuedAt, attempts: 0 };
    const startedAt = this.clock.now();
    const queueWaitMs = startedAt - data.enqueuedAt;
    this.figures.jobStarted(data.priority, queueWaitMs, { queue: true, clientId: data.clientId, expectedServiceMs: data.expectedServiceMs });
    this.tracing.recordSpan('queue wait', data.traceparent, data.enqueuedAt, startedAt, {
      'bulwark.priority': data.priority,
      'bulwark.job_id': jobId,
      'bulwark.queue_wait_ms': queueWaitMs,
    });
    if (startedAt >= data.deadlineAt) {
      this.figures.jobFinished(undefined);
      if (data.mode === 'sync') await this.delivery.fail(data.origin, jobId, new QueueTimeoutError(queueWaitMs)).catch(() => undefined);
      await background?.fail(new QueueTimeoutError(queueWaitMs)).catch(() => undefined);
      return { outcome: 'expired', queueWaitMs };
    }
    const timeoutMs = data.deadlineAt - data.enqueuedAt;
    const controller = this.cancellation.open(jobId);
    const timer = setTimeout(() => controller.abort(new RequestTimeoutError(timeoutMs)), data.deadlineAt - startedAt);
    const untrackRunning = this.figures.trackRunning(data.expectedServiceMs);
    let attempts = 0;
    // Only completed work says how long a job holds its slot; failures and cut-offs would skew the estimate.
    let served = false;
    try {
      if (data.mode === 'sync') await this.delivery.started(data.origin, jobId, startedAt);
      const answer = await this.tracing.runWithParent(data.traceparent, () =>
        this.dispatcher.dispatch(
          { path: data.path, model: data.model, body: data.body, stream: data.stream, affinityKey: data.affinityKey },
          { signal: controller.signal, deadlineAt: data.deadlineAt, retriesAllowed: data.retriesAllowed, onAttempt: () => (attempts = ++spent.attempts) },
        ),
      );
      if (background) {
        await background.record(answer);
        spent.usage = background.usage;
        served = true;
        return { outcome: 'succeeded', status: answer.status, upstream: answer.upstream, model: answer.model, queueWaitMs, durationMs: this.clock.now() - startedAt, attempts };
      }
      if (data.mode === 'async') {
        if (answer.kind !== 'json') throw new Error('async jobs are never streamed');
        spent.usage = usageOfBody(answer.body);
        served = true;
        const durationMs = this.clock.now() - startedAt;
        return { outcome: 'succeeded', status: answer.status, body: answer.body, upstream: answer.upstream, model: answer.model, queueWaitMs, durationMs, attempts };
      }
      await this.delivery.deliver(data.origin, jobId, answer);
      served = true;
      return { outcome: 'succeeded', status: answer.status, upstream: answer.upstream, model: answer.model, queueWaitMs, durationMs: this.clock.now() - startedAt, attempts };
    } catch (error) {
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : error;
      if (reason instanceof CancelledError && reason.by === 'shutdown') {
        if (data.mode !== 'sync') return 'hand_back';
        await this.delivery.fail(data.origin, jobId, new ShuttingDownError()).catch(() => undefined);
        return { outcome: 'failed', queueWaitMs, attempts, error: errorSummary(new ShuttingDownError()) };
      }
      if (reason instanceof CancelledError) {
        await background?.cancelled().catch(() => undefined);
        return { outcome: 'cancelled', queueWaitMs, attempts };
      }
      if (background) {
        // The failure is the response's state (GET /v1/responses/{id}), not an operator's dead letter.
        await background.fail(reason).catch(() => undefined);
        return { outcome: 'failed', queueWaitMs, attempts, error: errorSummary(reason) };
      }
      if (data.mode === 'sync') {
        await this.delivery.fail(data.origin, jobId, reason).catch(() => undefined);
        // The caller has its answer; a sync request's failure is not an operator's dead letter.
        return { outcome: 'failed', queueWaitMs, attempts, error: errorSummary(reason) };
      }
      // BullMQ keeps only a message for failed jobs: carry the contract-shaped error in it.
      throw new AsyncJobFailure(JSON.stringify({ ...toErrorResponse(reason), attempts }));
    } finally {
      clearTimeout(timer);
      controller.close();
      untrackRunning();
      this.figures.jobFinished(served ? this.clock.now() - startedAt : undefined);
    }
  }
}

/** What running a job spent, for its token accounting: upstream calls made, and the usage its answer reported. */
interface JobSpend {
  attempts: number;
  usage?: AnswerUsage;
}

/** An async job failed for good; its message is the contract-shaped error, kept in the dead-letter list. */
class AsyncJobFailure extends Error {}

function errorSummary(error: unknown): { message: string; type: string; code: string | null } {
  const { message, type, code } = toErrorResponse(error).body.error;
  return { message, type, code };
}
