import { Injectable, OnModuleInit } from '@nestjs/common';
import { Gauge } from 'prom-client';
import { ResponseFigures } from '../responses/response-figures';
import { RESPONSE_STATUSES } from '../responses/response-store';
import { MetricsService } from './metrics.service';

/** `bulwark_background_responses{status}` in the one registry: the cluster's figures, the same on every instance. */
@Injectable()
export class BackgroundResponsesMetrics implements OnModuleInit {
  constructor(
    private readonly metrics: MetricsService,
    private readonly figures: ResponseFigures,
  ) {}

  onModuleInit(): void {
    const figures = this.figures;
    new Gauge({
      name: 'bulwark_background_responses',
      help: 'Background responses across the cluster by status: queued and in_progress now; completed, failed, cancelled and incomplete reached so far (the same figure on every instance).',
      labelNames: ['status'] as const,
      registers: [this.metrics.registry],
      async collect() {
        await figures.refresh();
        const counts = figures.snapshot();
        for (const status of RESPONSE_STATUSES) this.set({ status }, counts[status]);
      },
    });
  }
}
