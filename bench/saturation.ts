import { type RuntimeDuringRun, runtimeDuring } from './gateway-runtime';
import { CpuMeter, MachineIdleMeter } from './process-stats';
import { wrk } from './load-tools';
import type { ProxyPaths } from './proxy-paths';
import { type RedisCost, redisCost, RedisStats, type TopLevelShares } from './redis-stats';

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
  /** Share of the run's wall time the proxy's main thread was on a CPU (1 = saturated). */
  mainThreadBusy?: number;
  /** Share of the machine's CPU left idle during the run (other agents' work included). */
  machineIdle: number;
}

/** Saturation figures of every path, and what Redis did for Bulwark's requests. */
export interface SaturationResult {
  rows: SaturationRow[];
  redis: RedisCost;
  /** Bulwark's requests that waited in the BullMQ queue rather than taking the fast lane. */
  queuedShare: number;
  /** Bulwark's event-loop delay and garbage collection during its run. */
  runtime: RuntimeDuringRun;
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
  let runtime: RuntimeDuringRun | undefined;
  try {
    for (const path of stack.paths) {
      const warmUp = () => wrk(path.url, connections, warmUpSeconds);
      let shares: TopLevelShares | undefined;
      // Which commands Bulwark sends itself and which its scripts run: learnt while warming up.
      if (path.name === 'Bulwark') shares = await stats.topLevelShares(warmUp);
      else await warmUp();
      const cpu = path.pid ? new CpuMeter(path.pid) : undefined;
      const machine = new MachineIdleMeter();
      const redisBefore = await stats.snapshot();
      const queuedBefore = Number(await stats.get(PRIORITIZED_ADDS_KEY));
      cpu?.start();
      machine.start();
      const started = performance.now();
      const run = () => wrk(path.url, connections, seconds);
      const measured = shares ? await runtimeDuring(new URL(path.url).origin, run) : { result: await run(), runtime: undefined };
      const result = measured.result;
      runtime ??= measured.runtime;
      const wallUs = (performance.now() - started) * 1000;
      const machineIdle = machine.stop();
      const used = cpu?.stop();
      const redisAfter = await stats.snapshot();
      const served = result.total;
      if (shares) {
        redis = redisCost(redisBefore, redisAfter, served, shares);
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
        mainThreadBusy: used && used.mainThreadUs / wallUs,
        machineIdle,
      });
    }
  } finally {
    await stats.close();
  }
  if (!redis || !runtime) throw new Error('no Bulwark path to measure');
  return { rows, redis, queuedShare, runtime };
}
