import { Module, OnModuleInit } from '@nestjs/common';
import { BreakerModule } from '../breaker/breaker.module';
import { DispatchModule } from '../dispatch/dispatch.module';
import { QueueModule } from '../queue/queue.module';
import { UpstreamModule } from '../upstream/upstream.module';
import { AdaptiveService } from './adaptive.service';
import { AdmissionGuard } from './admission.guard';
import { AdmissionService } from './admission.service';
import { ServiceTimes } from './service-times.service';
import { UpstreamLoadPoller } from '../upstream/upstream-load.poller';

@Module({
  imports: [QueueModule, DispatchModule, UpstreamModule, BreakerModule],
  providers: [AdaptiveService, AdmissionService, AdmissionGuard, ServiceTimes],
  exports: [AdaptiveService, AdmissionService, AdmissionGuard, ServiceTimes],
})
export class AdaptiveModule implements OnModuleInit {
  constructor(
    private readonly poller: UpstreamLoadPoller,
    private readonly adaptive: AdaptiveService,
  ) {}

  /** The upstreams' polled load weighs in the health score. */
  onModuleInit(): void {
    this.poller.onRound((load) => this.adaptive.setUpstreamLoad(load));
  }
}
