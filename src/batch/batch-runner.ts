import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { randomUUID } from 'node:crypto';
import { CancelledError } from '../common/errors';
import { ShutdownService } from '../common/shutdown.service';
import { batchConfig, queueConfig } from '../config/sections';
import { ClusterIdentity } from '../cluster/cluster-identity';
import { SlotService } from '../queue/slot.service';
import { RedisService } from '../redis/redis.service';
import { BatchLineExecutor, LinePreempted } from './batch-line-executor';
import { BatchFinalizer } from './batch-finalizer';
import { BatchFigures } from './batch-figures';
import { BatchStore, ClaimedLine } from './batch-store';


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
 * slots at once (the queue core tells it when a slot freed with nothing waiting); BatchSweeper's tick
 * covers slots freed elsewhere; BatchPreemption stops lines when interactive work finds every slot taken.
 */
@Injectable()
export class BatchRunner implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(BatchRunner.name);
  private readonly running = new Map<string, RunningLine>();
  private filling = false;
  private fillAgain = false;
  private stopped = true;
  private renewTimer?: NodeJS.Timeout;

  constructor(
    private readonly store: BatchStore,
    private readonly finalizer: BatchFinalizer,
    private readonly slots: SlotService,
    private readonly executor: BatchLineExecutor,
    private readonly shutdown: ShutdownService,
    private readonly redis: RedisService,
    private readonly figures: BatchFigures,
    private readonly identity: ClusterIdentity,
    @Inject(queueConfig.KEY) private readonly queue: ConfigType<typeof queueConfig>,
    @Inject(batchConfig.KEY) private readonly config: ConfigType<typeof batchConfig>,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.queue.workerEnabled) return;
    this.stopped = false;
    // Every freed slot would cost a claim in Redis: only while there is batch work.
    this.slots.onFreed(() => {
      if (this.figures.anyWork) this.fill();
    });
    this.shutdown.onDrain(() => (this.stopped = true));
    this.shutdown.onGraceOver(() => this.handBack());
    this.renewTimer = setInterval(() => void this.renew(), Math.max(200, Math.floor(this.queue.lockMs / 3)));
    this.renewTimer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.renewTimer);
    await this.handBack();
  }

  /** A batch was created here: its lines may start now, before the next sweep counts it. */
  batchCreated(): void {
    this.figures.batchCreated();
    this.fill();
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

  /** Stops the line running here under `slotLease`, if it still runs: it is handed back to run again later. */
  stop(slotLease: string): void {
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
      const outcome = await this.executor.execute(claimed, batch.endpoint, signal);
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

