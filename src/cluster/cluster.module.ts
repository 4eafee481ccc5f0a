import { Global, Module } from '@nestjs/common';
import { ClusterIdentity } from './cluster-identity';

/** What spans the instances that share one Redis: their identity (and, below it all, nothing else). */
@Global()
@Module({
  providers: [ClusterIdentity],
  exports: [ClusterIdentity],
})
export class ClusterModule {}
