import { UpstreamSimulator } from '../src/simulator/simulator';
import { startRedis } from '../test/support/redis-server';
import { wrk } from './load-tools';
import { startBenchGateway } from './bench-gateway';

/** Which refusal every answer of a run is. */
export type RefusalKind = 'queue full' | 'key share';

/** Refusals under overload at one connection count. */
export interface RefusalRow {
  kind: RefusalKind;
  connections: number;
  refusalsPerSecond: number;
  total: number;
  /** Answers that were not a refusal (2xx) and socket errors: both should be 0. */
  notRefused: number;
  p50: number;
  p90: number;
  p99: number;
}

const HOLD_BODY = JSON.stringify({ model: 'sim-small', messages: [{ role: 'user', content: 'hold' }], x_sim: { fault: 'hang' } });
const NOISY_KEY = 'noisykey';

/**
 * Cost of a refusal at overload, measured with `wrk` against requests held at a hanging upstream:
 * - `queue full`: 1 slot, a queue of 1, both taken; every answer is a 503 `queue_full`.
 * - `key share`: two client keys, so each may hold 80 % of the queue (8 of 10) and `noisykey` holds all
 *   of its 8 places (graduated shedding off); every answer to `noisykey` is a 429 `key_queue_share_exceeded`.
 */
export async function refusalCost(seconds: number, connectionCounts: number[], keyShareConnections: number): Promise<RefusalRow[]> {
  const rows: RefusalRow[] = [];
  await withHeldGateway({ MAX_CONCURRENT_REQUESTS: '1', MAX_QUEUE_SIZE: '1' }, {}, 2, 503, 'queue_full', async (url) => {
    for (const connections of connectionCounts) rows.push(row('queue full', connections, await wrk(url, connections, seconds)));
  });
  const auth = { authorization: `Bearer ${NOISY_KEY}` };
  await withHeldGateway(
    { MAX_CONCURRENT_REQUESTS: '1', MAX_QUEUE_SIZE: '10', QUEUE_REJECTION_THRESHOLD: '1', API_KEYS: `${NOISY_KEY}:normal,otherkey:normal` },
    auth,
    1 + 8,
    429,
    'key_queue_share_exceeded',
    async (url) => {
      rows.push(row('key share', keyShareConnections, await wrk(url, keyShareConnections, seconds, auth)));
    },
  );
  return rows;
}

function row(kind: RefusalKind, connections: number, result: Awaited<ReturnType<typeof wrk>>): RefusalRow {
  return {
    kind,
    connections,
    refusalsPerSecond: result.requestsPerSecond,
    total: result.total,
    notRefused: result.total - result.non2xx + result.errors,
    p50: result.p50,
    p90: result.p90,
    p99: result.p99,
  };
}

/**
 * Starts a gateway with `env` on a private Redis and a simulator, sends `held` requests that hang at the
 * upstream or wait in the queue, checks that the next request is refused with `status` and `code`, then
 * runs `measure` against its chat completions URL.
 */
async function withHeldGateway(
  env: Record<string, string>,
  headers: Record<string, string>,
  held: number,
  status: number,
  code: string,
  measure: (url: string) => Promise<void>,
): Promise<void> {
  const redis = await startRedis();
  const simulator = new UpstreamSimulator({ latencyMs: 0 });
  const { baseUrl } = await simulator.start();
  const gateway = await startBenchGateway({ REDIS_URL: redis.url, UPSTREAM_URL: baseUrl, REQUEST_TIMEOUT_MS: '600000', ...env }).catch(async (error: unknown) => {
    await simulator.stop();
    await redis.stop();
    throw error;
  });
  try {
    const url = `${gateway.url}/v1/chat/completions`;
    const send = (body: string, timeoutMs = 600_000) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal: AbortSignal.timeout(timeoutMs) });
    void send(HOLD_BODY).catch(() => undefined);
    const deadline = Date.now() + 10_000;
    while (simulator.stats.inFlight < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (let i = 1; i < held; i++) void send(HOLD_BODY).catch(() => undefined);
    // Until the queued ones have landed, a probe may be queued itself (it then gives up after 2 s).
    let probe: { status: number; code?: string } | undefined;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 300));
      const answer = await send(HOLD_BODY, 2000).catch(() => undefined);
      probe = answer && { status: answer.status, code: ((await answer.json().catch(() => ({}))) as { error?: { code?: string } }).error?.code };
      if (probe?.status === status && probe.code === code) break;
    }
    if (probe?.status !== status || probe.code !== code) throw new Error(`expected every answer to be ${status} ${code}, got ${JSON.stringify(probe)}`);
    await measure(url);
  } finally {
    await gateway.stop('SIGKILL');
    await simulator.stop();
    await redis.stop();
  }
}
