import { Injectable, OnModuleInit } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { MetricsService } from '../metrics/metrics.service';
import { BATCH_STATUSES } from './batch-object';
import { BatchFigures } from './batch-figures';
import { BatchStore } from './batch-store';

/**
 * The batches' metrics, in the one registry: batches by status and lines waiting (across the cluster,
 * read from Redis at scrape time), lines running and done (this instance).
 */
@Injectable()
export class BatchMetrics implements OnModuleInit {
  constructor(
    private readonly metrics: MetricsService,
    private readonly store: BatchStore,
    private readonly figures: BatchFigures,
  ) {}

  onModuleInit(): void {
    const { store, figures } = this;
    const registers = [this.metrics.registry];
    new Gauge({
      name: 'bulwark_batches',
      help: 'Batches by status, across every instance.',
      labelNames: ['status'] as const,
      registers,
      async collect() {
        const counts = await store.countsByStatus().catch(() => undefined);
        if (!counts) return;
        for (const status of BATCH_STATUSES) this.set({ status }, Math.max(0, counts[status] ?? 0));
      },
    });
    new Gauge({
      name: 'bulwark_batch_lines_waiting',
      help: 'Lines of unfinished batches not done yet (running ones included), across every instance.',
      registers,
      async collect() {
        const active = await store.active().catch(() => undefined);
        if (active) this.set(active.reduce((sum, b) => sum + Math.max(0, b.total - b.done), 0));
      },
    });
    new Gauge({
      name: 'bulwark_batch_lines_running',
      help: 'Batch lines running on this instance now.',
      registers,
      collect() {
        this.set(figures.snapshot().linesRunning);
      },
    });
    new Counter({
      name: 'bulwark_batch_lines_total',
      help: 'Batch lines this instance ran to an outcome, by outcome (completed: answered; failed: in the error file).',
      labelNames: ['outcome'] as const,
      registers,
      collect() {
        const { completed, failed } = figures.snapshot().linesDone;
        this.reset();
        this.inc({ outcome: 'completed' }, completed);
        this.inc({ outcome: 'failed' }, failed);
      },
    });
  }
}
