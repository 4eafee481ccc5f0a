import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AdaptiveModule } from '../adaptive/adaptive.module';
import { BreakerModule } from '../breaker/breaker.module';
import { QueueModule } from '../queue/queue.module';
import { UpstreamModule } from '../upstream/upstream.module';
import { HealthReportService } from './health-report.service';
import { HealthController } from './health.controller';

/** Lists the health checks; each indicator is provided by the module whose dependency it checks. */
@Module({
  imports: [TerminusModule.forRoot({ logger: false, errorLogStyle: 'json' }), UpstreamModule, QueueModule, BreakerModule, AdaptiveModule],
  controllers: [HealthController],
  providers: [HealthReportService],
})
export class HealthModule {}
