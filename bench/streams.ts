import { Pool } from 'undici';
import { startRedis } from '../test/support/redis-server';
import { listenOverflows, memoryMB } from './process-stats';
import { startSimulatorProcess } from './simulator-process';
import { startBenchGateway } from './bench-gateway';

/** Many concurrent streams through one path. */
export interface StreamsRow {
  path: string;
  streams: number;
  /** Streams answered 200 with every content chunk and the final `[DONE]`. */
  complete: number;
  /** From the moment all were sent, in ms. */
  slowestFirstChunkMs: number;
  medianCompletionMs: number;
  /** The longest time from a stream's first chunk to its end: the relay's own pace, connection set-up aside. */
  longestStreamingMs: number;
  slowestCompletionMs: number;
  /** Connections the kernel dropped from a full listen queue during the run (machine-wide; retried ~1 s later). */
  listenOverflows: number;
  /** Streams that did not complete, by reason. */
  failures: Record<string, number>;
  /** Peak resident set (VmHWM) of the proxy process, and its resident set before the streams; MB. */
  peakRssMB?: number;
  rssBeforeMB?: number;
}

/** The streaming shape every stream has: `chunks` words, `intervalMs` apart. */
export interface StreamShape {
  count: number;
  chunks: number;
  intervalMs: number;
}

interface StreamOutcome {
  /** Answered 200, with every content chunk and the final `[DONE]`. */
  ok: boolean;
  /** Why not: the status and the start of the body, or the client error. */
  failure?: string;
  firstChunkMs: number;
  doneMs: number;
}

async function oneStream(pool: Pool, path: string, body: string, chunks: number, started: number): Promise<StreamOutcome> {
  const res = await pool.request({ path, method: 'POST', headers: { 'content-type': 'application/json' }, body, headersTimeout: 60_000, bodyTimeout: 60_000 });
  let text = '';
  let firstChunkMs = NaN;
  for await (const chunk of res.body) {
    if (Number.isNaN(firstChunkMs)) firstChunkMs = performance.now() - started;
    text += (chunk as Buffer).toString();
  }
  const doneMs = performance.now() - started;
  if (res.statusCode !== 200) return { ok: false, failure: `${res.statusCode} ${text.slice(0, 120)}`, firstChunkMs, doneMs };
  const events = text
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice(6));
  const parsed = events.filter((e) => e !== '[DONE]').map((e) => JSON.parse(e) as { choices?: { delta?: { content?: string } }[]; error?: unknown });
  const error = parsed.find((e) => e.error !== undefined);
  if (error) return { ok: false, failure: `200, then an error event ${JSON.stringify(error).slice(0, 120)}`, firstChunkMs, doneMs };
  const content = parsed.filter((e) => e.choices?.[0]?.delta?.content).length;
  const ok = events.at(-1) === '[DONE]' && content === chunks;
  return { ok, failure: ok ? undefined : `200 with ${content} chunks, last event ${events.at(-1)?.slice(0, 80)}`, firstChunkMs, doneMs };
}

/** Opens `shape.count` streams at once on `url` (one connection each) and waits for all of them. */
async function streamsAtOnce(url: string, shape: StreamShape): Promise<Omit<StreamsRow, 'path'>> {
  const { origin, pathname } = new URL(url);
  const pool = new Pool(origin, { connections: shape.count, pipelining: 1 });
  const body = JSON.stringify({ model: 'sim-small', messages: [{ role: 'user', content: 'stream' }], stream: true, x_sim: { chunks: shape.chunks } });
  try {
    const overflowsBefore = listenOverflows();
    const started = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: shape.count }, () =>
        oneStream(pool, pathname, body, shape.chunks, started).catch(
          (error: Error): StreamOutcome => ({ ok: false, failure: `${error.name}: ${error.message}`, firstChunkMs: NaN, doneMs: performance.now() - started }),
        ),
      ),
    );
    const complete = outcomes.filter((o) => o.ok);
    const done = complete.map((o) => o.doneMs).sort((a, b) => a - b);
    const failures: Record<string, number> = {};
    for (const o of outcomes) if (o.failure) failures[o.failure] = (failures[o.failure] ?? 0) + 1;
    return {
      streams: shape.count,
      complete: complete.length,
      slowestFirstChunkMs: Math.max(...complete.map((o) => o.firstChunkMs)),
      medianCompletionMs: done[Math.floor(done.length / 2)] ?? NaN,
      longestStreamingMs: Math.max(...complete.map((o) => o.doneMs - o.firstChunkMs)),
      slowestCompletionMs: done.at(-1) ?? NaN,
      listenOverflows: listenOverflows() - overflowsBefore,
      failures,
    };
  } finally {
    await pool.destroy();
  }
}

/**
 * `shape.count` concurrent streams of `shape.chunks` chunks `shape.intervalMs` apart, straight to the
 * simulator and through one gateway with as many slots and queue places as streams.
 */
export async function concurrentStreams(shape: StreamShape): Promise<StreamsRow[]> {
  const simulator = await startSimulatorProcess(['--latency-ms', '0', '--chunk-interval-ms', String(shape.intervalMs)]);
  const { baseUrl } = simulator;
  const redis = await startRedis().catch(async (error: unknown) => {
    await simulator.stop();
    throw error;
  });
  try {
    const direct = await streamsAtOnce(`${baseUrl}/chat/completions`, shape);
    const gateway = await startBenchGateway({
      REDIS_URL: redis.url,
      UPSTREAM_URL: baseUrl,
      MAX_CONCURRENT_REQUESTS: String(shape.count),
      MAX_QUEUE_SIZE: String(shape.count),
    });
    try {
      const pid = gateway.child.pid!;
      const rssBeforeMB = memoryMB(pid, 'VmRSS');
      const through = await streamsAtOnce(`${gateway.url}/v1/chat/completions`, shape);
      return [
        { path: 'direct', ...direct },
        { path: 'Bulwark', ...through, peakRssMB: memoryMB(pid, 'VmHWM'), rssBeforeMB },
      ];
    } finally {
      await gateway.stop('SIGKILL');
    }
  } finally {
    await simulator.stop();
    await redis.stop();
  }
}
