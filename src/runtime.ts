import type { UpstreamTopology } from './config/upstreams-file';
import type { RedisTarget } from './redis/redis-target';

/**
 * What the process prepared before Nest started: the Redis to use (external or the embedded child)
 * and the upstreams (configured or the built-in simulator). Provided to every module as `RUNTIME`.
 */
export interface Runtime {
  redis: RedisTarget;
  topology: UpstreamTopology;
  /** True when Bulwark started its own simulated upstream. */
  simulated: boolean;
}

export const RUNTIME = Symbol('RUNTIME');
