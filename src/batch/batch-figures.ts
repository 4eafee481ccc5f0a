import { Injectable } from '@nestjs/common';

/** The batch figures an operator sees (dashboard, metrics), kept current without a Redis read each time. */
export interface BatchFiguresSnapshot {
  /** Unfinished batches across the cluster, as of the runner's last sweep. */
  activeBatches: number;
  /** Lines of those batches not done yet. */
  linesWaiting: number;
  /** Lines running on this instance now. */
  linesRunning: number;
  /** Lines this instance ran to an outcome since it started. */
  linesDone: { completed: number; failed: number };
}

/** Holds the batch figures: this instance's own, and the cluster's as the runner's sweep last read them. */
@Injectable()
export class BatchFigures {
  private cluster = { activeBatches: 0, linesWaiting: 0 };
  private running = 0;
  private readonly done = { completed: 0, failed: 0 };

  lineStarted(): void {
    this.running++;
  }

  lineEnded(): void {
    this.running = Math.max(0, this.running - 1);
  }

  lineDone(outcome: 'completed' | 'failed'): void {
    this.done[outcome]++;
  }

  /** A batch was created here: count it before the next sweep does, so the runner looks for its lines now. */
  batchCreated(): void {
    this.cluster = { ...this.cluster, activeBatches: this.cluster.activeBatches + 1 };
  }

  /** Whether batch work may be there: unfinished batches, or lines running here. */
  get anyWork(): boolean {
    return this.cluster.activeBatches > 0 || this.running > 0;
  }

  /** The unfinished batches as the sweep read them. */
  sweptActive(batches: { total: number; done: number }[]): void {
    this.cluster = { activeBatches: batches.length, linesWaiting: batches.reduce((sum, b) => sum + Math.max(0, b.total - b.done), 0) };
  }

  snapshot(): BatchFiguresSnapshot {
    return { ...this.cluster, linesRunning: this.running, linesDone: { ...this.done } };
  }
}
