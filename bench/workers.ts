import { startRedis } from '../test/support/redis-server';
import { startBenchGateway } from './bench-gateway';
import { wrk } from './load-tools';
import { untilChildrenIdle } from './process-stats';
import { startSimulatorProcess } from './simulator-process';

/** One gateway configuration driven to saturation. */
export interface WorkersRow {
  workers: number;
  requestsPerSecond: number;
  failed: number;
  p50: number;
  p99: number;
  /** The exit code of the gateway (the primary, for WORKERS > 1) after SIGTERM: 0 when it drained cleanly. */
  exitCode: number | null;
}

/**
 * Saturation throughput (`wrk -t1 -c<connections>`) of one gateway with each WORKERS setting, in turn, on
 * one private Redis and one standalone simulator process; each gateway then gets SIGTERM and its exit
 * code is kept.
 */
export async function workersThroughput(counts: number[], connections: number, seconds: number, warmUpSeconds: number): Promise<WorkersRow[]> {
  const simulator = await startSimulatorProcess(['--latency-ms', '0', '--chunk-interval-ms', '0']);
  const redis = await startRedis().catch(async (error: unknown) => {
    await simulator.stop();
    throw error;
  });
  const rows: WorkersRow[] = [];
  try {
    for (const workers of counts) {
      const gateway = await startBenchGateway({
        REDIS_URL: redis.url,
        UPSTREAM_URL: simulator.baseUrl,
        MAX_CONCURRENT_REQUESTS: String(connections),
        MAX_QUEUE_SIZE: '100000',
        WORKERS: String(workers),
        SHUTDOWN_GRACE_MS: '5000',
      });
      try {
        // The gateway answers once one worker listens; the others may still be starting.
        if (workers > 1) await untilChildrenIdle(gateway.child.pid!, workers);
        const url = `${gateway.url}/v1/chat/completions`;
        await wrk(url, connections, warmUpSeconds);
        const result = await wrk(url, connections, seconds);
        const exitCode = await gateway.stop('SIGTERM', 30_000);
        rows.push({ workers, requestsPerSecond: result.requestsPerSecond, failed: result.non2xx + result.errors, p50: result.p50, p99: result.p99, exitCode });
      } finally {
        await gateway.stop('SIGKILL');
      }
    }
  } finally {
    await redis.stop();
    await simulator.stop();
  }
  return rows;
}
