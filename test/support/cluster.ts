import { Clock, SystemClock } from '../../src/common/clock';
import { ClusterIdentity } from '../../src/cluster/cluster-identity';
import { ClusterLeases } from '../../src/cluster/cluster-leases.service';
import { ClusterSignals } from '../../src/cluster/cluster-signals.service';
import { RedisService } from '../../src/redis/redis.service';
import type { Runtime } from '../../src/runtime';

/** One instance's view of the cluster, built as the gateway builds it, on a Redis at `url`. */
export interface ClusterMember {
  redis: RedisService;
  identity: ClusterIdentity;
  signals: ClusterSignals;
  leases: ClusterLeases;
  /** Stops its timers and closes its connections (a clean shutdown, without forgetting its leases). */
  close(): Promise<void>;
}

/**
 * A cluster member on the Redis at `url`: its state connection is up when this resolves. `renewing`:
 * its lease loop runs (else a test calls `leases.renew()` itself).
 */
export async function clusterMember(url: string, options: { lockMs?: number; clock?: Clock; renewing?: boolean } = {}): Promise<ClusterMember> {
  const redis = new RedisService({ redis: { kind: 'url', url } } as unknown as Runtime);
  await redis.onModuleInit();
  const identity = new ClusterIdentity();
  const signals = new ClusterSignals(redis, options.clock ?? new SystemClock());
  const leases = new ClusterLeases(redis, identity, { lockMs: options.lockMs ?? 5_000 });
  if (options.renewing ?? true) await leases.onApplicationBootstrap();
  return {
    redis,
    identity,
    signals,
    leases,
    close: async () => {
      leases.stop();
      signals.onApplicationShutdown();
      await redis.onApplicationShutdown();
    },
  };
}
