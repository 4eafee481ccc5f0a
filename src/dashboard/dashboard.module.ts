import { Module } from '@nestjs/common';
import { AdaptiveModule } from '../adaptive/adaptive.module';
import { BreakerModule } from '../breaker/breaker.module';
import { QueueModule } from '../queue/queue.module';
import { ResponsesModule } from '../responses/responses.module';
import { UpstreamModule } from '../upstream/upstream.module';
import { BatchModule } from '../batch/batch.module';
import { DashboardController } from './dashboard.controller';
import { DashboardService } from './dashboard.service';
import { DashboardStreams } from './dashboard-streams';

/** The live operator dashboard: the page, its JSON snapshot and its SSE stream. */
@Module({
  imports: [QueueModule, AdaptiveModule, BreakerModule, UpstreamModule, ResponsesModule, BatchModule],
  controllers: [DashboardController],
  providers: [DashboardService, DashboardStreams],
})
export class DashboardModule {}
