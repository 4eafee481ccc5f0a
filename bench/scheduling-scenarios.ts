import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { startRedis } from '../test/support/redis-server';
import { ClientRequest, Outcome, percentile, runClosedLoop, sendSequentially, statusMix } from './support/closed-loop';
import { startGatewayBuild } from './support/gateway-build';

/**
 * The three scheduling scenarios (noisy neighbour, two replicas, mixed sizes), each against one gateway
 * build (`main`: a `dist/src/main.js`) with its own private redis-server and in-process simulators.
 * Every build gets the same environment; the figures are what the clients saw.
 */

const MESSAGES = [{ role: 'user', content: 'hi' }];
const MODEL = 'sim-small';

/** Starts a private redis-server and the gateway build on it, runs `run`, and stops both. */
async function withGateway<T>(main: string, env: Record<string, string>, run: (url: string) => Promise<T>): Promise<T> {
  const redis = await startRedis();
  try {
    const gateway = await startGatewayBuild(main, { REDIS_URL: redis.url, SHUTDOWN_GRACE_MS: '1000', ...env });
    try {
      return await run(gateway.url);
    } finally {
      await gateway.stop();
    }
  } finally {
    await redis.stop();
  }
}

/** Starts one simulator per entry, runs `run` with their base URLs, and stops them. */
async function withSimulators<T>(latencies: number[], run: (baseUrls: string[]) => Promise<T>): Promise<T> {
  const simulators = latencies.map((latencyMs) => new UpstreamSimulator({ latencyMs, models: [MODEL] }));
  try {
    const started = await Promise.all(simulators.map((s) => s.start()));
    return await run(started.map((s) => s.baseUrl));
  } finally {
    await Promise.all(simulators.map((s) => s.stop()));
  }
}

const served = (outcomes: Outcome[]) => outcomes.filter((o) => o.status === 200);
const perSecond = (count: number, elapsedMs: number) => count / (elapsedMs / 1000);

/** What one client key saw in the noisy-neighbour scenario. */
export interface KeyFigures {
  /** Requests answered within the run (any status). */
  answered: number;
  served: number;
  /** Served / answered. */
  servedShare: number;
  /** Latency of served requests, in upstream service times. */
  p50ServiceTimes: number;
  p99ServiceTimes: number;
  mix: Record<string, number>;
}

export interface NoisyNeighbourResult {
  seconds: number;
  capacityPerS: number;
  goodputPerS: number;
  /** `GET /health/live` every 100 ms on a connection of its own meanwhile: its p99 and slowest answer, ms. */
  liveP99Ms: number;
  liveMaxMs: number;
  light: KeyFigures;
  noisy: KeyFigures;
}

const LIVENESS_PERIOD_MS = 100;

/**
 * What a Kubernetes liveness probe sees: `GET /health/live` every `periodMs`, one at a time, on one
 * keep-alive connection of its own; `latencies` (ms, a failed probe counts as 10 s) once stopped.
 */
function probeLiveness(origin: string, periodMs: number): { stop(): void; latencies: Promise<number[]> } {
  const dispatcher = new Agent({ connections: 1 });
  let running = true;
  const latencies = (async () => {
    const measured: number[] = [];
    while (running) {
      const started = performance.now();
      try {
        const answer = await request(`${origin}/health/live`, { dispatcher, signal: AbortSignal.timeout(10_000) });
        await answer.body.text();
        measured.push(answer.statusCode === 200 ? performance.now() - started : 10_000);
      } catch {
        measured.push(10_000);
      }
      await new Promise((r) => setTimeout(r, periodMs));
    }
    await dispatcher.close();
    return measured;
  })();
  return { stop: () => (running = false), latencies };
}

const NOISY = { slots: 3, serviceMs: 200, queue: 30, noisyClients: 60, lightClients: 2, lightPauseMs: 200 };

/**
 * Noisy neighbour: key `noisykey` runs 60 closed-loop clients, key `lightkey` 2 clients that pause
 * 200 ms after each answer; same priority (both `normal`, equal weights), 3 slots of 200 ms, queue of 30.
 */
export async function noisyNeighbour(main: string, seconds: number): Promise<NoisyNeighbourResult> {
  const env = { MAX_CONCURRENT_REQUESTS: String(NOISY.slots), MAX_QUEUE_SIZE: String(NOISY.queue), API_KEYS: 'noisykey:normal,lightkey:normal' };
  return withSimulators([NOISY.serviceMs], ([upstream]) =>
    withGateway(main, { ...env, UPSTREAM_URL: upstream }, async (url) => {
      const request = (key: string) => (): ClientRequest => ({ headers: { authorization: `Bearer ${key}` }, body: { model: MODEL, messages: MESSAGES, max_tokens: 8 } });
      const probe = probeLiveness(url, LIVENESS_PERIOD_MS);
      const run = await runClosedLoop(
        url,
        [
          { name: 'noisy', clients: NOISY.noisyClients, request: request('noisykey') },
          { name: 'light', clients: NOISY.lightClients, request: request('lightkey'), pauseMs: NOISY.lightPauseMs },
        ],
        seconds * 1000,
      ).finally(() => probe.stop());
      const live = await probe.latencies;
      const figures = (group: string): KeyFigures => {
        const answered = run.outcomes.filter((o) => o.group === group);
        const latencies = served(answered).map((o) => o.latencyMs / NOISY.serviceMs);
        return {
          answered: answered.length,
          served: served(answered).length,
          servedShare: served(answered).length / Math.max(1, answered.length),
          p50ServiceTimes: percentile(latencies, 50),
          p99ServiceTimes: percentile(latencies, 99),
          mix: statusMix(answered),
        };
      };
      return {
        seconds: run.elapsedMs / 1000,
        capacityPerS: NOISY.slots / (NOISY.serviceMs / 1000),
        goodputPerS: perSecond(served(run.outcomes).length, run.elapsedMs),
        liveP99Ms: percentile(live, 99),
        liveMaxMs: Math.max(...live),
        light: figures('light'),
        noisy: figures('noisy'),
      };
    }),
  );
}

export interface ReplicasResult {
  seconds: number;
  served: number;
  throughputPerS: number;
  /** Served requests per `X-Upstream`. */
  byUpstream: Record<string, number>;
  fastShare: number;
  p50LatencyMs: number;
  mix: Record<string, number>;
}

const REPLICAS = { fastMs: 100, slowMs: 600, clients: 16, slots: 16 };

/** Two replicas of one model (100 ms and 600 ms, equal weights), 16 closed-loop clients, 16 slots. */
export async function twoReplicas(main: string, seconds: number): Promise<ReplicasResult> {
  return withSimulators([REPLICAS.fastMs, REPLICAS.slowMs], async ([fast, slow]) => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-schedbench-'));
    try {
      const upstreamsFile = join(dir, 'upstreams.json');
      const upstream = (name: string, url: string) => ({ name, url, models: [MODEL], weight: 1 });
      writeFileSync(upstreamsFile, JSON.stringify({ upstreams: [upstream('fast', fast), upstream('slow', slow)], fallbacks: {} }));
      return await withGateway(main, { UPSTREAMS_FILE: upstreamsFile, MAX_CONCURRENT_REQUESTS: String(REPLICAS.slots) }, async (url) => {
        const body = { model: MODEL, messages: MESSAGES, max_tokens: 8 };
        const run = await runClosedLoop(url, [{ name: 'client', clients: REPLICAS.clients, request: () => ({ body }) }], seconds * 1000);
        const ok = served(run.outcomes);
        const byUpstream: Record<string, number> = {};
        for (const o of ok) byUpstream[o.upstream ?? 'none'] = (byUpstream[o.upstream ?? 'none'] ?? 0) + 1;
        return {
          seconds: run.elapsedMs / 1000,
          served: ok.length,
          throughputPerS: perSecond(ok.length, run.elapsedMs),
          byUpstream,
          fastShare: (byUpstream.fast ?? 0) / Math.max(1, ok.length),
          p50LatencyMs: percentile(ok.map((o) => o.latencyMs), 50),
          mix: statusMix(run.outcomes),
        };
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

export interface MixedSizesResult {
  seconds: number;
  answered: number;
  /** 429 and 503: refused at the door. */
  refused: number;
  admitted: number;
  /** 504s among the admitted requests. */
  timedOut: number;
  timedOutShare: number;
  goodputPerS: number;
  /** Slot time spent on requests that were answered 200, as a share of all slot time of the run. */
  usefulSlotShare: number;
  /** Served requests per size. */
  servedBySize: Record<string, number>;
  /** Answers per size (`small`, `large`). */
  mixBySize: Record<string, Record<string, number>>;
}

/** The simulator answers in 2 ms per output token: 50 tokens in 100 ms, 1,000 in 2 s. */
const MS_PER_TOKEN = 2;
const SIZES = [
  { tag: 'small', tokens: 50 },
  { tag: 'large', tokens: 1000 },
];
const MIXED = { slots: 2, deadlineMs: 3000, clients: 20 };

function sizedRequest(size: (typeof SIZES)[number]): ClientRequest {
  return {
    tag: size.tag,
    headers: { 'x-request-timeout-ms': String(MIXED.deadlineMs) },
    // The simulator's answer holds `chunks` words (usage.completion_tokens), after latencyMs.
    body: { model: MODEL, messages: MESSAGES, max_tokens: size.tokens, x_sim: { latencyMs: size.tokens * MS_PER_TOKEN, chunks: size.tokens } },
  };
}

/**
 * Mixed sizes: 2 slots, 20 closed-loop clients alternating 50-token (100 ms) and 1,000-token (2 s)
 * requests with 3 s deadlines. A warm-up of two sequential requests of each size comes first, in
 * every build, so that a build which learns service times from completed calls has seen some.
 */
export async function mixedSizes(main: string, seconds: number): Promise<MixedSizesResult> {
  return withSimulators([0], ([upstream]) =>
    withGateway(main, { UPSTREAM_URL: upstream, MAX_CONCURRENT_REQUESTS: String(MIXED.slots) }, async (url) => {
      await sendSequentially(url, [...SIZES, ...SIZES].map(sizedRequest), 10_000);
      const run = await runClosedLoop(
        url,
        [{ name: 'client', clients: MIXED.clients, request: (client, sequence) => sizedRequest(SIZES[(client + sequence) % SIZES.length]) }],
        seconds * 1000,
      );
      const answered = run.outcomes.filter((o) => o.status !== undefined);
      const refused = answered.filter((o) => o.status === 429 || o.status === 503).length;
      const admitted = answered.length - refused;
      const timedOut = answered.filter((o) => o.status === 504).length;
      const ok = served(run.outcomes);
      const servedBySize = Object.fromEntries(SIZES.map((s) => [s.tag, ok.filter((o) => o.tag === s.tag).length]));
      const usefulMs = SIZES.reduce((sum, s) => sum + servedBySize[s.tag] * s.tokens * MS_PER_TOKEN, 0);
      return {
        seconds: run.elapsedMs / 1000,
        answered: answered.length,
        refused,
        admitted,
        timedOut,
        timedOutShare: timedOut / Math.max(1, admitted),
        goodputPerS: perSecond(ok.length, run.elapsedMs),
        usefulSlotShare: usefulMs / (MIXED.slots * run.elapsedMs),
        servedBySize,
        mixBySize: Object.fromEntries(SIZES.map((s) => [s.tag, statusMix(run.outcomes.filter((o) => o.tag === s.tag))])),
      };
    }),
  );
}
