import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Job, Queue } from 'bullmq';
import { NEVER_RAN, TokenUsageService } from '../auth/token-usage.service';
import { JobNotCancellableError, NotFoundError } from '../common/errors';
import { queueConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { CancellationService } from '../cancellation/cancellation.service';
import { INFERENCE_QUEUE, InferenceJobData, InferenceJobResult } from './inference-job';
import { QueueFigures } from './queue-figures.service';
import { SlotService } from './slot.service';

export type JobStatus = 'queued' | 'active' | 'cancelling' | 'completed' | 'failed' | 'cancelled' | 'expired';

/** The job object of the jobs API. */
export interface JobView {
  id: string;
  object: 'job';
  status: JobStatus;
  /** 1 = next to start; only while queued. */
  position: number | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  model: string;
  priority: string;
  queue_wait_ms: number | null;
  duration_ms: number | null;
  upstream: string | null;
  /** Upstream calls made for the job so far (retries and fallbacks included); null until it ends. */
  attempts: number | null;
  result: unknown;
  error: { message: string; type: string; code: string | null } | null;
}

const TOMBSTONE_PREFIX = 'bulwark:jobs:cancelled:';
const seconds = (ms: number | undefined | null) => (ms ? Math.floor(ms / 1000) : null);

/** The jobs API over BullMQ: status, position, result, cancel, the dead-letter list, queue stats. */
@Injectable()
export class JobsService {
  constructor(
    @InjectQueue(INFERENCE_QUEUE) private readonly queue: Queue<InferenceJobData, InferenceJobResult>,
    @Inject(queueConfig.KEY) private readonly config: ConfigType<typeof queueConfig>,
    private readonly cancellation: CancellationService,
    private readonly figures: QueueFigures,
    private readonly redis: RedisService,
    private readonly slots: SlotService,
    private readonly tokens: TokenUsageService,
  ) {}

  /** A job of `clientId`'s; another caller's job is reported as not found, revealing nothing. */
  async get(id: string, clientId: string): Promise<JobView> {
    const job = await this.queue.getJob(id);
    if (job && job.data.mode === 'async' && job.data.clientId === clientId) return this.view(job);
    const tombstone = await this.redis.client.get(TOMBSTONE_PREFIX + id).catch(() => null);
    if (tombstone) {
      const view = JSON.parse(tombstone) as JobView & { owner: string };
      if (view.owner === clientId) {
        const { owner: _owner, ...rest } = view;
        return rest;
      }
    }
    throw new NotFoundError('job_not_found', `No job ${id}`, 'id');
  }

  /**
   * Cancels a job of `clientId`'s. A queued job is removed at once (`cancelled`); a running one is
   * `cancelling` until its worker confirms, then `cancelled`. Cancelling a cancelled job answers it again;
   * a job that already completed or failed cannot be cancelled.
   */
  async cancel(id: string, clientId: string): Promise<JobView> {
    const job = await this.queue.getJob(id);
    if (!job || job.data.mode !== 'async' || job.data.clientId !== clientId) return this.get(id, clientId);
    const current = await this.view(job);
    if (current.status === 'cancelled' || current.status === 'cancelling') return current;
    if (current.status !== 'queued' && current.status !== 'active') throw new JobNotCancellableError(current.status);
    if (current.status === 'queued') {
      const removed = await job.remove().then(
        () => true,
        () => false,
      );
      if (removed) {
        await this.slots.forget(id).catch(() => undefined);
        if (job.data.tokens) this.tokens.endJob(clientId, job.data.tokens, job.data.model, NEVER_RAN);
        const view: JobView = { ...current, status: 'cancelled', position: null, finished_at: seconds(Date.now()) };
        await this.redis.client.set(TOMBSTONE_PREFIX + id, JSON.stringify({ ...view, owner: clientId }), 'PX', this.config.jobResultTtlMs);
        return view;
      }
      // Became active meanwhile: cancel it where it runs.
    }
    await this.cancellation.cancel(id);
    return { ...current, status: 'cancelling', position: null };
  }

  async view(job: Job<InferenceJobData, InferenceJobResult>): Promise<JobView> {
    const state = await job.getState();
    const result = job.returnvalue as InferenceJobResult | null | undefined;
    const base: JobView = {
      id: String(job.id),
      object: 'job',
      status: 'queued',
      position: null,
      created_at: Math.floor(job.timestamp / 1000),
      started_at: seconds(job.processedOn),
      finished_at: seconds(job.finishedOn),
      model: job.data.model,
      priority: job.data.priority,
      queue_wait_ms: job.processedOn ? job.processedOn - job.data.enqueuedAt : null,
      duration_ms: job.processedOn && job.finishedOn ? job.finishedOn - job.processedOn : null,
      upstream: null,
      attempts: null,
      result: null,
      error: null,
    };
    if (state === 'active') {
      const cancelling = await this.cancellation.cancelRequested(String(job.id)).catch(() => false);
      return { ...base, status: cancelling ? 'cancelling' : 'active' };
    }
    if (state === 'failed') {
      const failure = parseFailure(job.failedReason);
      return { ...base, status: 'failed', attempts: failure.attempts, error: failure.error };
    }
    if (state === 'completed' && result) {
      if (result.outcome === 'succeeded') return { ...base, status: 'completed', upstream: result.upstream, attempts: result.attempts ?? null, result: result.body ?? null };
      if (result.outcome === 'cancelled') return { ...base, status: 'cancelled', attempts: result.attempts ?? null };
      if (result.outcome === 'expired' || result.outcome === 'dropped') {
        return { ...base, status: 'expired', attempts: 0, error: { message: 'The job\'s deadline passed before it started', type: 'timeout_error', code: 'queue_timeout' } };
      }
      return { ...base, status: 'failed', attempts: result.attempts ?? null, error: result.error };
    }
    // Waiting (prioritized), or taken by a worker that has not started it yet: queued until it starts.
    return { ...base, status: 'queued', started_at: null, queue_wait_ms: null, position: await this.position(String(job.id)) };
  }

  /** The job object of a job just submitted: queued, whatever a fast worker may have done meanwhile. */
  async submitted(job: Job<InferenceJobData, InferenceJobResult>): Promise<JobView> {
    const view = await this.view(job);
    return view.status === 'active' ? { ...view, status: 'queued', started_at: null, queue_wait_ms: null } : view;
  }

  private async position(id: string): Promise<number | null> {
    const rank = await this.redis.client.zrank(this.queue.keys.prioritized, id).catch(() => null);
    return rank === null ? null : rank + 1;
  }

  /** The dead-letter list: async jobs that failed for good, newest first. */
  async deadLetters(limit = 100) {
    const jobs = await this.queue.getJobs(['failed'], 0, limit - 1, false);
    return {
      object: 'list',
      data: jobs.map((job) => ({
        id: String(job.id),
        client_id: job.data.clientId,
        model: job.data.model,
        priority: job.data.priority,
        created_at: Math.floor(job.timestamp / 1000),
        failed_at: seconds(job.finishedOn),
        ...parseFailure(job.failedReason),
      })),
    };
  }

  async stats() {
    await this.figures.refresh();
    const snapshot = this.figures.snapshot();
    return {
      waiting: snapshot.waiting,
      active: snapshot.active,
      by_priority: snapshot.byPriority,
      max_queue_size: this.config.maxQueueSize,
      max_concurrent: this.config.maxConcurrent,
      capacity_percent: Math.round((snapshot.waiting / this.config.maxQueueSize) * 10_000) / 100,
    };
  }
}

type ErrorSummary = { message: string; type: string; code: string | null };

/** Failed jobs carry the contract-shaped error and the upstream attempts as their message (see InferenceProcessor). */
function parseFailure(reason: string | undefined): { error: ErrorSummary; attempts: number | null } {
  try {
    const parsed = JSON.parse(reason ?? '') as { body?: { error?: ErrorSummary }; attempts?: number };
    if (parsed.body?.error) {
      const { message, type, code } = parsed.body.error;
      return { error: { message, type, code }, attempts: typeof parsed.attempts === 'number' ? parsed.attempts : null };
    }
  } catch {
    // BullMQ's own reasons (e.g. a job stalled too often) are plain text.
  }
  return { error: { message: reason ?? 'The job failed', type: 'upstream_error', code: 'upstream_error' }, attempts: null };
}
