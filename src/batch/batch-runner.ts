import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { Clock } from '../common/clock';
import { CancelledError, RequestTimeoutError } from '../common/errors';
import { ShutdownService } from '../common/shutdown.service';
import { batchConfig, queueConfig } from '../config/sections';
import { UpstreamDispatcher } from '../dispatch/upstream-dispatcher';
import { ClusterIdentity } from '../cluster/cluster-identity';
import { SlotService } from '../queue/slot.service';
import { RedisService } from '../redis/redis.service';
import { BATCH_ENDPOINTS } from './batch-object';
import { answeredLine, BatchOutputLine, customIdOf, failedLine, unansweredLine } from './batch-output';
import { BatchFinalizer } from './batch-finalizer';
import { BatchFigures } from './batch-figures';
import { BatchStore, ClaimedLine } from './batch-store';

/** How often each instance looks for idle slots it was not told about, and for batches that may end. */
const SWEEP_MS = 500;

/** A line stopped so that interactive work gets its slot; it runs again later and the stop is not counted. */
class LinePreempted extends Error {}

interface RunningLine {
  claimed: ClaimedLine;
  controller: AbortController;
}

/**
 * Runs batch lines on idle capacity, one runner per instance. A line starts only through one atomic
 * step in Redis that takes a free global slot while no interactive request of any priority waits (see
 * batch-scripts.ts), together with the next line's lease; it runs through the same dispatcher as any
 * request (breakers, retries within the budget, fallbacks); its outcome is recorded once; its slot goes
 * back through the queue core, which hands it to interactive work that waits. The runner fills freed
 * slots at once (the queue core tells it when a slot freed with nothing waiting) and polls for the rest.
 */
@Injectable()
export class BatchRunner implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(BatchRunner.name);
  private readonly running = new Map<string, RunningLine>();
  private filling = false;
  private fillAgain = false;
  private stopped = true;
  private sweepTimer?: NodeJS.Timeout;
  private renewTimer?: NodeJS.Timeout;
  private subscriber?: Redis;

  constructor(
    private readonly store: BatchStore,
    private readonly finalizer: BatchFinalizer,
    private readonly slots: SlotService,
    private readonly dispatcher: UpstreamDispatcher,
    private readonly shutdown: ShutdownService,
    private readonly redis: RedisService,
    private readonly clock: Clock,
    private readonly figures: BatchFigures,
    private readonly identity: ClusterIdentity,
    @Inject(queueConfig.KEY) private readonly queue: ConfigType<typeof queueConfig>,
    @Inject(batchConfig.KEY) private readonly config: ConfigType<typeof batchConfig>,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // Any instance that queues interactive work may stop a line, even one that runs none itself.
    if (this.config.preempt) this.slots.onQueued(() => void this.preemptForWaiting());
    // Every instance sweeps (ends batches, keeps the figures); only workers run lines.
    this.sweepTimer = setInterval(() => void this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
    if (!this.queue.workerEnabled) return;
    this.stopped = false;
    this.slots.onFreed(() => this.fill());
    if (this.config.preempt) {
      this.subscriber = this.redis.create('batch-preempt', { enableOfflineQueue: true, maxRetriesPerRequest: null });
      this.subscriber.on('message', (_channel: string, slotLease: string) => this.stop(slotLease));
      await this.subscriber.subscribe(preemptChannel(this.identity.id)).catch((error: Error) => this.logger.warn(`batch preempt channel: ${error.message}`));
    }
    this.shutdown.onDrain(() => (this.stopped = true));
    this.shutdown.onGraceOver(() => this.handBack());
    this.renewTimer = setInterval(() => void this.renew(), Math.max(200, Math.floor(this.queue.lockMs / 3)));
    this.renewTimer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweepTimer);
    clearInterval(this.renewTimer);
    await this.handBack();
  }

  /** Starts batch lines while this instance may and idle global slots are there. */
  fill(): void {
    if (this.filling) {
      this.fillAgain = true;
      return;
    }
    this.filling = true;
    void (async () => {
      try {
        while (!this.stopped && this.redis.ready && this.running.size < this.queue.maxConcurrent) {
          const result = await this.store.claim(this.slots.keys, this.identity.id, `batch-${randomUUID()}`, {
            maxConcurrent: this.queue.maxConcurrent,
            slotLeaseMs: this.queue.lockMs,
            headroom: this.config.idleHeadroom,
            lineLeaseMs: this.queue.lockMs,
            maxStarts: this.config.lineMaxStarts,
          });
          if (result.kind !== 'line') break;
          this.start(result.claimed);
        }
      } catch (error) {
        this.logger.debug(`batch fill failed: ${(error as Error).message}`);
      } finally {
        this.filling = false;
        if (this.fillAgain) {
          this.fillAgain = false;
          this.fill();
        }
      }
    })();
  }

  private start(claimed: ClaimedLine): void {
    this.slots.adopt(claimed.slotLease);
    const key = `${claimed.batchId}:${claimed.index}`;
    const controller = new AbortController();
    this.running.set(key, { claimed, controller });
    this.figures.lineStarted();
    const done = this.shutdown.trackWork();
    void this.run(claimed, controller.signal).finally(() => {
      this.running.delete(key);
      this.figures.lineEnded();
      done();
      void this.store.lineEnded(claimed.runningMember).catch(() => undefined);
      void this.slots.release(claimed.slotLease);
    });
  }

  /**
   * A request was queued here: when it waits because batch lines hold every slot, the line started last
   * (anywhere in the cluster) stops and gives its slot back, which the queue core hands to the request.
   */
  private async preemptForWaiting(): Promise<void> {
    if (this.figures.snapshot().activeBatches === 0 && this.running.size === 0) return;
    try {
      const picked = await this.store.preempt(this.slots.keys, this.queue.maxConcurrent);
      if (!picked) return;
      if (picked.instanceId === this.identity.id) this.stop(picked.slotLease);
      else await this.redis.client.publish(preemptChannel(picked.instanceId), picked.slotLease);
    } catch (error) {
      // The request waits for the next slot that frees, as it would without preemption.
      this.logger.debug(`batch preemption failed: ${(error as Error).message}`);
    }
  }

  /** Stops the line running here under `slotLease`, if it still runs. */
  private stop(slotLease: string): void {
    for (const { claimed, controller } of this.running.values()) {
      if (claimed.slotLease === slotLease) controller.abort(new LinePreempted());
    }
  }

  /** Runs one line and records its outcome (unless it was handed back at shutdown). */
  private async run(claimed: ClaimedLine, signal: AbortSignal): Promise<void> {
    const { batchId, index } = claimed;
    try {
      const batch = await this.store.get(batchId);
      if (!batch) return;
      const outcome = claimed.line === undefined
        ? { ok: false, line: unansweredLine(`line-${index + 1}`, 'input_file_deleted', 'The batch\'s input file was deleted before this line ran') }
        : await this.execute(claimed.line, index, batch.endpoint, signal);
      if (outcome === 'handed_back') {
        if (signal.reason instanceof LinePreempted) await this.store.handBack([[batchId, index]], true);
        return;
      }
      const { recorded, done, total } = await this.store.record(batchId, index, (outcome.ok ? 'o' : 'e') + JSON.stringify(outcome.line), outcome.ok ? 'completed' : 'failed');
      if (recorded) this.figures.lineDone(outcome.ok ? 'completed' : 'failed');
      // Not awaited: writing a large output must not hold the line's slot.
      if (recorded && done >= total) void this.finalizer.finalize(batchId);
    } catch (error) {
      // Redis failed us: the line's lease lapses and the line starts again elsewhere.
      this.logger.warn({ batchId, line: index + 1 }, `batch line not recorded: ${(error as Error).message}`);
    }
  }

  private async execute(raw: string, index: number, endpoint: string, signal: AbortSignal): Promise<{ ok: boolean; line: BatchOutputLine } | 'handed_back'> {
    const input = JSON.parse(raw) as { custom_id: string; body: Record<string, unknown> & { model: string } };
    const customId = customIdOf(raw, index);
    const deadlineAt = this.clock.now() + this.config.lineTimeoutMs;
    const controller = new AbortController();
    const stop = () => controller.abort(signal.reason);
    signal.addEventListener('abort', stop, { once: true });
    const timer = setTimeout(() => controller.abort(new RequestTimeoutError(this.config.lineTimeoutMs)), this.config.lineTimeoutMs);
    try {
      const answer = await this.dispatcher.dispatch(
        { path: BATCH_ENDPOINTS[endpoint], model: input.body.model, body: { ...input.body, stream: false }, stream: false },
        { signal: controller.signal, deadlineAt, retriesAllowed: true },
      );
      if (answer.kind !== 'json') throw new Error('a batch line is never streamed');
      return { ok: true, line: answeredLine(customId, answer.status, answer.body) };
    } catch (error) {
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : error;
      if ((reason instanceof CancelledError && reason.by === 'shutdown') || reason instanceof LinePreempted) return 'handed_back';
      return { ok: false, line: failedLine(customId, reason) };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', stop);
    }
  }

  /** Ends the batches that may end; starts lines on slots that freed elsewhere. */
  private async sweep(): Promise<void> {
    if (!this.redis.ready) return;
    try {
      const now = this.clock.now();
      const active = await this.store.active();
      this.figures.sweptActive(active);
      for (const batch of active) {
        const mayEnd =
          batch.sealed ||
          (batch.status === 'in_progress' && (batch.done >= batch.total || now >= batch.expiresAtMs)) ||
          batch.status === 'cancelling';
        if (mayEnd) await this.finalizer.finalize(batch.id);
      }
    } catch (error) {
      this.logger.debug(`batch sweep failed: ${(error as Error).message}`);
    }
    this.fill();
  }

  private async renew(): Promise<void> {
    const lines = [...this.running.values()].map(({ claimed }) => [claimed.batchId, claimed.index] as [string, number]);
    await this.store.renew(this.queue.lockMs, lines).catch((error: Error) => this.logger.debug(`batch lease renewal failed: ${error.message}`));
  }

  /** Stops the lines still running here and gives them back at once, for any instance to start again. */
  private async handBack(): Promise<void> {
    if (this.running.size === 0) return;
    const lines = [...this.running.values()];
    for (const { controller } of lines) controller.abort(new CancelledError('shutdown'));
    await this.store.handBack(lines.map(({ claimed }) => [claimed.batchId, claimed.index])).catch(() => undefined);
  }
}

function preemptChannel(instanceId: string): string {
  return `bulwark:batch:preempt:${instanceId}`;
}
