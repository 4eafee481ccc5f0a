import { Injectable } from '@nestjs/common';

/** Batch lines this instance recorded, by outcome, since it started (for the metrics and the dashboard). */
@Injectable()
export class BatchLineCounters {
  readonly done = { completed: 0, failed: 0 };

  lineDone(outcome: 'completed' | 'failed'): void {
    this.done[outcome]++;
  }
}
