import { Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { ClusterSignals } from '../cluster/cluster-signals.service';
import { CancelledError } from '../common/errors';
import { RedisService } from '../redis/redis.service';

const CANCEL_CHANNEL = 'bulwark:jobs:cancel';
const CANCEL_KEY_PREFIX = 'bulwark:jobs:cancel:';
const CANCEL_KEY_TTL_MS = 3600_000;
/** The cancel keys of the jobs running here are read this often, so a cancel lost on the channel still lands. */
const CANCEL_POLL_MS = 150;

/** A job running here, as cancellation sees it. */
export interface RunningJobControl {
  signal: AbortSignal;
  abort(reason: unknown): void;
  /** The job ended: its controller goes. */
  close(): void;
}

/**
 * The one owner of the per-job `AbortController`s of the work running here, and the way a cancel reaches
 * whichever instance runs a job: a key per cancelled job (the truth, read by the cluster's poll behind
 * the cancel channel while jobs run here) and a message on that channel to make it immediate.
 */
@Injectable()
export class CancellationService implements OnApplicationBootstrap {
  private readonly running = new Map<string, AbortController>();

  constructor(
    private readonly redis: RedisService,
    private readonly signals: ClusterSignals,
  ) {}

  onApplicationBootstrap(): void {
    this.signals.subscribe(CANCEL_CHANNEL, (jobId) => this.abortHere(jobId), { everyMs: CANCEL_POLL_MS, run: () => this.readCancels() });
  }

  /** Job `jobId` starts running here: its controller, aborted by a cancel from any instance. */
  open(jobId: string): RunningJobControl {
    const controller = new AbortController();
    this.running.set(jobId, controller);
    return {
      signal: controller.signal,
      abort: (reason) => controller.abort(reason),
      close: () => {
        if (this.running.get(jobId) === controller) this.running.delete(jobId);
      },
    };
  }

  /** Aborts every job running here with `reason` (the end of a shutdown's grace period). */
  abortAll(reason: unknown): void {
    for (const controller of this.running.values()) controller.abort(reason);
  }

  /** Whether a cancel was asked for `jobId` (from any instance). */
  async cancelRequested(jobId: string): Promise<boolean> {
    return (await this.redis.client.exists(CANCEL_KEY_PREFIX + jobId)) === 1;
  }

  /** Aborts a job wherever it runs, or keeps it from starting. */
  async cancel(jobId: string): Promise<void> {
    this.abortHere(jobId);
    await this.redis.client.set(CANCEL_KEY_PREFIX + jobId, '1', 'PX', CANCEL_KEY_TTL_MS);
    await this.signals.publish(CANCEL_CHANNEL, jobId);
  }

  private abortHere(jobId: string): void {
    this.running.get(jobId)?.abort(new CancelledError('job_cancel'));
  }

  /** The cancel keys of the jobs running here: any that exists aborts its job. */
  private async readCancels(): Promise<void> {
    if (this.running.size === 0) return;
    const ids = [...this.running.keys()];
    const marks = await this.redis.client.mget(ids.map((id) => CANCEL_KEY_PREFIX + id));
    marks.forEach((mark, i) => {
      if (mark !== null) this.abortHere(ids[i]);
    });
  }
}
