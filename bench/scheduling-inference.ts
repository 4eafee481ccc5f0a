import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SimulatorOptions, UpstreamSimulator } from '../src/simulator/simulator';
import { startRedis } from '../test/support/redis-server';
import { percentile } from './support/closed-loop';
import { startGatewayBuild } from './support/gateway-build';
import { streamAgent, streamChat, StreamedTurn } from './support/stream-client';

/**
 * The inference-aware scheduling scenarios: multi-turn chats on a fleet of simulated vLLM replicas
 * (prefix caches, prefill time for the uncached prompt), and one replica of three that stalls a share
 * of its calls. Each runs the gateway build once per routing setup, on fresh replicas and a fresh Redis.
 */

const MODEL = 'sim-small';

/** Starts `replicas` simulators, a private Redis and the gateway with an UPSTREAMS_FILE over them; runs `run`; stops all. */
async function withFleet<T>(
  main: string,
  replicas: SimulatorOptions[],
  file: Record<string, unknown>,
  env: Record<string, string>,
  run: (url: string, simulators: UpstreamSimulator[]) => Promise<T>,
): Promise<T> {
  const simulators = replicas.map((options) => new UpstreamSimulator({ models: [MODEL], ...options }));
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-inference-bench-'));
  const redis = await startRedis();
  try {
    const urls = await Promise.all(simulators.map(async (s) => (await s.start()).baseUrl));
    const upstreamsFile = join(dir, 'upstreams.json');
    writeFileSync(upstreamsFile, JSON.stringify({ upstreams: urls.map((url, i) => ({ name: `r${i}`, url, models: [MODEL] })), ...file }));
    const gateway = await startGatewayBuild(main, { REDIS_URL: redis.url, UPSTREAMS_FILE: upstreamsFile, SHUTDOWN_GRACE_MS: '1000', UPSTREAM_METRICS_POLL_MS: '1000', ...env });
    try {
      return await run(gateway.url, simulators);
    } finally {
      await gateway.stop();
    }
  } finally {
    await Promise.all(simulators.map((s) => s.stop()));
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Samples each simulator's calls in flight every 50 ms until stopped; the time-averaged loads. */
function sampleLoads(simulators: UpstreamSimulator[]): { stop(): number[] } {
  const sums = simulators.map(() => 0);
  let samples = 0;
  const timer = setInterval(() => {
    simulators.forEach((s, i) => (sums[i] += s.stats.inFlight));
    samples++;
  }, 50);
  return {
    stop: () => {
      clearInterval(timer);
      return sums.map((sum) => sum / Math.max(1, samples));
    },
  };
}

const words = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');

export interface MultiTurnResult {
  conversations: number;
  turns: number;
  answered: number;
  failed: number;
  /** Prompt tokens the replicas found in their prefix caches, as a share of all prompt tokens. */
  prefixCacheHitRate: number;
  p50TtftMs: number;
  p99TtftMs: number;
  /** Prefill the replicas simulated per request (uncached prompt tokens × ms per token): TTFT without the machine's own delays. */
  meanPrefillMs: number;
  /** The machine's 1-minute load average at the end of the run (TTFT includes its delays; prefill does not). */
  loadAverage: number;
  /** Time-averaged calls in flight of the busiest replica, over the average of all replicas. */
  maxLoadOverAverage: number;
  /** Requests served by each replica. */
  servedByReplica: number[];
  seconds: number;
}

export const MULTI_TURN = { conversations: 100, concurrent: 25, turns: 10, replicas: 4, systemWords: 120, questionWords: 60, answerWords: 8, prefillMsPerToken: 4, cacheTokens: 6000 };

/**
 * Multi-turn chats: 100 conversations of 10 turns, 25 running at any time, every turn resending the
 * whole history (a shared system prompt, then the conversation's questions and answers), on 4 replicas
 * with 4 ms of prefill per uncached prompt token and a prefix cache of 6,000 tokens each: room for a
 * quarter of the live conversations each, not for all of them, as a real KV cache under load.
 */
export async function multiTurn(main: string, routing: 'least-loaded' | 'prefix-aware'): Promise<MultiTurnResult> {
  const c = MULTI_TURN;
  const replica: SimulatorOptions = { latencyMs: 10, chunkIntervalMs: 2, defaultChunks: c.answerWords, prefixCacheTokens: c.cacheTokens, blockTokens: 16, prefillMsPerToken: c.prefillMsPerToken };
  const env = { ROUTING: routing, MAX_CONCURRENT_REQUESTS: String(c.concurrent), MAX_QUEUE_SIZE: String(c.conversations * 2), REQUEST_TIMEOUT_MS: '60000' };
  return withFleet(main, Array.from({ length: c.replicas }, () => replica), {}, env, async (url, simulators) => {
    const agent = streamAgent(c.concurrent);
    const turns: StreamedTurn[] = [];
    let failed = 0;
    const system = words('policy', c.systemWords);
    const started = performance.now();
    const loads = sampleLoads(simulators);
    let nextConversation = 0;
    const converse = async (conversation: number) => {
      const messages: { role: string; content: string }[] = [{ role: 'system', content: system }];
      for (let turn = 0; turn < c.turns; turn++) {
        messages.push({ role: 'user', content: words(`c${conversation}t${turn}w`, c.questionWords) });
        const answer = await streamChat(url, agent, { model: MODEL, messages }).catch(() => undefined);
        if (!answer || answer.status !== 200) {
          failed++;
          return;
        }
        turns.push(answer);
        messages.push({ role: 'assistant', content: answer.content });
      }
    };
    await Promise.all(
      Array.from({ length: c.concurrent }, async () => {
        while (nextConversation < c.conversations) await converse(nextConversation++);
      }),
    );
    const averageLoads = loads.stop();
    const seconds = (performance.now() - started) / 1000;
    await agent.destroy();
    const queries = simulators.reduce((sum, s) => sum + s.stats.prefixCacheQueries, 0);
    const hits = simulators.reduce((sum, s) => sum + s.stats.prefixCacheHits, 0);
    const mean = averageLoads.reduce((a, b) => a + b, 0) / averageLoads.length;
    const ttfts = turns.map((t) => t.ttftMs).filter(Number.isFinite);
    return {
      conversations: c.conversations,
      turns: c.turns,
      answered: turns.length,
      failed,
      prefixCacheHitRate: queries > 0 ? hits / queries : 0,
      p50TtftMs: percentile(ttfts, 50),
      p99TtftMs: percentile(ttfts, 99),
      meanPrefillMs: ((queries - hits) * c.prefillMsPerToken) / Math.max(1, turns.length),
      loadAverage: loadavg()[0],
      maxLoadOverAverage: mean > 0 ? Math.max(...averageLoads) / mean : 0,
      servedByReplica: simulators.map((s) => s.stats.requestsByPath['/v1/chat/completions'] ?? 0),
      seconds,
    };
  });
}

export interface StalledReplicaResult {
  requests: number;
  answered: number;
  p50TtftMs: number;
  p99TtftMs: number;
  p99OverP50: number;
  /** Upstream calls beyond one per request (hedges), as a share of requests. */
  extraCallShare: number;
  hedgedAnswers: number;
  stalledCalls: number;
  seconds: number;
}

export const STALLED = { replicas: 3, requests: 900, clients: 12, stallShare: 0.1, stallMs: 5000, latencyMs: 200, hedgeMinMs: 300, hedgeMaxMs: 500 };

/**
 * One replica of three stalls 10 % of its calls for 5 s before the first byte; 12 clients send 900
 * streamed requests (200 ms to the first token) in a closed loop. With `hedged`, the model has
 * `hedge: {minDelayMs: 300, maxDelayMs: 500}` and the default 5 % budget: the minimum sits above the
 * ordinary spread of first-byte times, so the budget goes to the stalls, not to ordinary jitter.
 */
export async function stalledReplica(main: string, hedged: boolean): Promise<StalledReplicaResult> {
  const s = STALLED;
  const replicas: SimulatorOptions[] = Array.from({ length: s.replicas }, (_, i) => ({
    latencyMs: s.latencyMs,
    chunkIntervalMs: 2,
    defaultChunks: 8,
    ...(i === 0 ? { stall: { share: s.stallShare, ms: s.stallMs } } : {}),
  }));
  const file = hedged ? { hedge: { [MODEL]: { minDelayMs: s.hedgeMinMs, maxDelayMs: s.hedgeMaxMs } } } : {};
  const env = { ROUTING: 'least-loaded', MAX_CONCURRENT_REQUESTS: String(s.clients * 2), MAX_QUEUE_SIZE: '100' };
  return withFleet(main, replicas, file, env, async (url, simulators) => {
    const agent = streamAgent(s.clients);
    const turns: StreamedTurn[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: s.clients }, async () => {
        while (next < s.requests) {
          const i = next++;
          const answer = await streamChat(url, agent, { model: MODEL, messages: [{ role: 'user', content: `question ${i}` }] }).catch(() => undefined);
          if (answer?.status === 200) turns.push(answer);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    await agent.destroy();
    const ttfts = turns.map((t) => t.ttftMs).filter(Number.isFinite);
    const calls = simulators.reduce((sum, sim) => sum + (sim.stats.requestsByPath['/v1/chat/completions'] ?? 0), 0);
    const p50 = percentile(ttfts, 50);
    const p99 = percentile(ttfts, 99);
    return {
      requests: s.requests,
      answered: turns.length,
      p50TtftMs: p50,
      p99TtftMs: p99,
      p99OverP50: p50 > 0 ? p99 / p50 : 0,
      extraCallShare: (calls - s.requests) / s.requests,
      hedgedAnswers: turns.filter((t) => t.hedged).length,
      stalledCalls: simulators[0].stats.stalled,
      seconds,
    };
  });
}
