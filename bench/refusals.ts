import { UpstreamSimulator } from '../src/simulator/simulator';
import { startRedis } from '../test/support/redis-server';
import { wrk } from './load-tools';
import { startBenchGateway } from './bench-gateway';

/** Refusals under overload at one connection count. */
export interface RefusalRow {
  connections: number;
  refusalsPerSecond: number;
  total: number;
  /** Answers that were not a refusal (2xx) and socket errors: both should be 0. */
  notRefused: number;
  p50: number;
  p90: number;
  p99: number;
}

/**
 * Cost of a refusal at overload: the queue is held full (one request runs against a hanging upstream,
 * one waits), then `wrk` drives each connection count at Bulwark for `seconds`; every answer is a 503.
 */
export async function refusalCost(seconds: number, connectionCounts: number[]): Promise<RefusalRow[]> {
  const redis = await startRedis();
  const simulator = new UpstreamSimulator({ latencyMs: 0 });
  const { baseUrl } = await simulator.start();
  const gateway = await startBenchGateway({
    REDIS_URL: redis.url,
    UPSTREAM_URL: baseUrl,
    MAX_CONCURRENT_REQUESTS: '1',
    MAX_QUEUE_SIZE: '1',
    REQUEST_TIMEOUT_MS: '600000',
  }).catch(async (error: unknown) => {
    await simulator.stop();
    await redis.stop();
    throw error;
  });
  try {
    const hold = JSON.stringify({ model: 'sim-small', messages: [{ role: 'user', content: 'hold' }], x_sim: { fault: 'hang' } });
    for (let i = 0; i < 2; i++) {
      void fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: hold }).catch(() => undefined);
    }
    const deadline = Date.now() + 10_000;
    while (simulator.stats.inFlight < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // The second request's add lands just after the first reached the upstream.
    await new Promise((r) => setTimeout(r, 500));
    const rows: RefusalRow[] = [];
    for (const connections of connectionCounts) {
      const result = await wrk(`${gateway.url}/v1/chat/completions`, connections, seconds);
      rows.push({
        connections,
        refusalsPerSecond: result.requestsPerSecond,
        total: result.total,
        notRefused: result.total - result.non2xx + result.errors,
        p50: result.p50,
        p90: result.p90,
        p99: result.p99,
      });
    }
    return rows;
  } finally {
    await gateway.stop('SIGKILL');
    await simulator.stop();
    await redis.stop();
  }
}
