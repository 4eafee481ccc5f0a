import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { BreakerModule } from '../breaker/breaker.module';
import { RUNTIME, Runtime } from '../runtime';
import { UpstreamClient } from './upstream-client';
import { UpstreamLeases } from './upstream-leases.service';
import { UpstreamOutcomes } from './upstream-outcomes';
import { UpstreamProbeService } from './upstream-probe.service';
import { UPSTREAM_TOPOLOGY, UpstreamRegistry } from './upstream-registry';
import { UpstreamHealthIndicator } from './upstream.health';

@Module({
  imports: [BreakerModule, TerminusModule],
  providers: [
    { provide: UPSTREAM_TOPOLOGY, useFactory: (runtime: Runtime) => runtime.topology, inject: [RUNTIME] },
    UpstreamRegistry,
    UpstreamClient,
    UpstreamOutcomes,
    UpstreamLeases,
    UpstreamProbeService,
    UpstreamHealthIndicator,
  ],
  exports: [UpstreamRegistry, UpstreamClient, UpstreamOutcomes, UpstreamLeases, UpstreamProbeService, UpstreamHealthIndicator],
})
export class UpstreamModule {}
