import { CpuMeter } from './process-stats';
import { wrk } from './load-tools';
import type { ProxyPaths } from './proxy-paths';
import { type RedisCost, redisCost, RedisStats } from './redis-stats';

/** One path driven closed-loop to saturation by `wrk`. */
export interface SaturationRow {
  path: string;
  requestsPerSecond: number;
  requests: number;
  /** Answers other than 2xx, and socket errors. */
  failed: number;
  p50: number;
  p99: number;
  /** CPU per request of the proxy's main thread and of its whole process (µs); absent for direct. */
  mainThreadUsPerRequest?: number;
  processUsPerRequest?: number;
}

/** Saturation figures of every path, and what Redis did for Bulwark's requests. */
export interface SaturationResult {
  rows: SaturationRow[];
  redis: RedisCost;
  /** Bulwark's requests that waited in the BullMQ queue rather than taking the fast lane. */
  queuedShare: number;
}

/**
 * BullMQ's counter of prioritized adds for Bulwark's queue (`bulwark:inference`): it grows by one for
 * every request that waited in the queue instead of taking the fast lane.
 */
const PRIORITIZED_ADDS_KEY = 'bulwark:inference:pc';

/**
 * Closed loop, `wrk -t1 -c<connections> -d<seconds>s` on each path after a short warm-up, measuring
 * the proxy's CPU (/proc) and, for Bulwark, Redis's `INFO commandstats` around the run.
 */
export async function saturation(stack: ProxyPaths, connections: number, seconds: number, warmUpSeconds: number): Promise<SaturationResult> {
  const rows: SaturationRow[] = [];
  const stats = new RedisStats(stack.redis.url);
  let redis: RedisCost | undefined;
  let queuedShare = NaN;
  try {
    for (const path of stack.paths) {
      await wrk(path.url, connections, warmUpSeconds);
      const cpu = path.pid ? new CpuMeter(path.pid) : undefined;
      const redisBefore = await stats.snapshot();
      const queuedBefore = Number(await stats.get(PRIORITIZED_ADDS_KEY));
      cpu?.start();
      const result = await wrk(path.url, connections, seconds);
      const used = cpu?.stop();
      const redisAfter = await stats.snapshot();
      const served = result.total;
      if (path.name === 'Bulwark') {
        redis = redisCost(redisBefore, redisAfter, served);
        queuedShare = (Number(await stats.get(PRIORITIZED_ADDS_KEY)) - queuedBefore) / served;
      }
      rows.push({
        path: path.name,
        requestsPerSecond: result.requestsPerSecond,
        requests: served,
        failed: result.non2xx + result.errors,
        p50: result.p50,
        p99: result.p99,
        mainThreadUsPerRequest: used && used.mainThreadUs / served,
        processUsPerRequest: used && used.processUs / served,
      });
    }
  } finally {
    await stats.close();
  }
  if (!redis) throw new Error('no Bulwark path to measure');
  return { rows, redis, queuedShare };
}
