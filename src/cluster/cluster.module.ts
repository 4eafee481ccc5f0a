import { Global, Module } from '@nestjs/common';
import { ClusterIdentity } from './cluster-identity';
import { ClusterLeases } from './cluster-leases.service';
import { ClusterSignals } from './cluster-signals.service';

/**
 * What spans the instances that share one Redis, once: this instance's identity and heartbeat, the one
 * subscriber connection with a poll behind every channel, and the one lease mechanism and its renewal loop.
 */
@Global()
@Module({
  providers: [ClusterIdentity, ClusterSignals, ClusterLeases],
  exports: [ClusterIdentity, ClusterSignals, ClusterLeases],
})
export class ClusterModule {}
