import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { BreakerModule } from '../breaker/breaker.module';
import { RUNTIME, Runtime } from '../runtime';
import { UpstreamClient } from './upstream-client';
import { KvCachePressure } from './kv-cache-pressure';
import { UpstreamLeases } from './upstream-leases.service';
import { UpstreamLoadPoller } from './upstream-load.poller';
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
    UpstreamLoadPoller,
    KvCachePressure,
  ],
  exports: [UpstreamRegistry, UpstreamClient, UpstreamOutcomes, UpstreamLeases, UpstreamProbeService, UpstreamHealthIndicator, UpstreamLoadPoller, KvCachePressure],
})
export class UpstreamModule {}
