import { Module } from '@nestjs/common';
import { AdaptiveModule } from '../adaptive/adaptive.module';
import { BreakerModule } from '../breaker/breaker.module';
import { QueueModule } from '../queue/queue.module';
import { ResponsesModule } from '../responses/responses.module';
import { UpstreamModule } from '../upstream/upstream.module';
import { BackgroundResponsesMetrics } from './background-responses.metrics';
import { HttpMetricsHook } from './http-metrics.hook';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';
import { TokenMetrics } from './token-metrics';

/** The Prometheus registry, its metric objects, the HTTP timing hook and `GET /metrics`. */
@Module({
  imports: [QueueModule, UpstreamModule, AdaptiveModule, BreakerModule, ResponsesModule],
  controllers: [MetricsController],
  providers: [MetricsService, HttpMetricsHook, TokenMetrics, BackgroundResponsesMetrics],
  exports: [MetricsService, HttpMetricsHook],
})
export class MetricsModule {}
