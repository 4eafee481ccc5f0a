import { Module } from '@nestjs/common';
import { BreakerModule } from '../breaker/breaker.module';
import { DispatchModule } from '../dispatch/dispatch.module';
import { QueueModule } from '../queue/queue.module';
import { UpstreamModule } from '../upstream/upstream.module';
import { AdaptiveService } from './adaptive.service';
import { AdmissionGuard } from './admission.guard';
import { AdmissionService } from './admission.service';
import { ServiceTimes } from './service-times.service';
import { UpstreamLoadPoller } from './upstream-load.poller';

@Module({
  imports: [QueueModule, DispatchModule, UpstreamModule, BreakerModule],
  providers: [AdaptiveService, AdmissionService, AdmissionGuard, UpstreamLoadPoller, ServiceTimes],
  exports: [AdaptiveService, AdmissionService, AdmissionGuard, ServiceTimes],
})
export class AdaptiveModule {}
