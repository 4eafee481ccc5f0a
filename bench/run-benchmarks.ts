/**
 * Bulwark's benchmarks (issue "Durable priority queue…", "Measured"). Not a test: it prints figures.
 *
 * 1. Added latency of the queue path: sequential requests at low load, straight to the simulator vs
 *    through Bulwark (admission, BullMQ queue, worker, delivery), p50/p99 of each and of the difference.
 * 2. Cost of a refusal at overload: the queue is held full (upstream hangs), then `wrk` drives many
 *    connections at Bulwark; every answer is a 503 refusal. Reports refusals/s and latency percentiles.
 *
 * Run: `npm run bench` (needs redis-server; wrk for part 2: `apt-get install -y wrk`).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { UpstreamSimulator } from '../src/upstream/simulator/simulator';
import { startGateway } from '../test/support/gateway-process';
import { startRedis } from '../test/support/redis-server';

const BODY = JSON.stringify({ model: 'sim-small', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function timeSequential(origin: string, path: string, count: number): Promise<number[]> {
  const pool = new Pool(origin, { connections: 1, pipelining: 1 });
  const durations: number[] = [];
  for (let i = 0; i < count + 200; i++) {
    const started = process.hrtime.bigint();
    const res = await pool.request({ path, method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode} after ${i} requests: ${text}`);
    // The first 200 requests warm up the JIT, pools and Redis connections.
    if (i >= 200) durations.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  await pool.close();
  return durations;
}

function summary(label: string, durations: number[]) {
  const sorted = [...durations].sort((a, b) => a - b);
  return { label, n: sorted.length, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99) };
}

async function queueOverhead(count: number) {
  const redis = await startRedis();
  const simulator = new UpstreamSimulator({ latencyMs: 0, chunkIntervalMs: 0 });
  const { baseUrl } = await simulator.start();
  const gateway = await startGateway({ env: { REDIS_URL: redis.url, UPSTREAM_URL: baseUrl } });
  try {
    const upstream = new URL(baseUrl);
    const direct = summary('direct to simulator', await timeSequential(upstream.origin, '/v1/chat/completions', count));
    const through = summary('through Bulwark', await timeSequential(gateway.url, '/v1/chat/completions', count));
    return { direct, through, added: { p50: through.p50 - direct.p50, p90: through.p90 - direct.p90, p99: through.p99 - direct.p99 } };
  } finally {
    await gateway.stop();
    await simulator.stop();
    await redis.stop();
  }
}

function parseWrk(output: string) {
  const unit = (v: string, u: string) => Number(v) * (u === 'us' ? 0.001 : u === 's' ? 1000 : 1);
  const pct = (p: string) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(output);
    return m ? unit(m[1], m[2]) : NaN;
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(output);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(output);
  const total = /(\d+) requests in/.exec(output);
  return { requestsPerSecond: rps ? Number(rps[1]) : NaN, p50: pct('50'), p90: pct('90'), p99: pct('99'), total: total ? Number(total[1]) : NaN, refused: non2xx ? Number(non2xx[1]) : 0 };
}

async function refusalCost(seconds: number, connectionCounts: number[]) {
  if (spawnSync('wrk', ['--version']).error) return { skipped: 'wrk is not installed (apt-get install -y wrk)' };
  const redis = await startRedis();
  const simulator = new UpstreamSimulator({ latencyMs: 0 });
  const { baseUrl } = await simulator.start();
  const gateway = await startGateway({
    env: { REDIS_URL: redis.url, UPSTREAM_URL: baseUrl, MAX_CONCURRENT_REQUESTS: '1', MAX_QUEUE_SIZE: '1', REQUEST_TIMEOUT_MS: '600000' },
  });
  try {
    // Hold the queue full: one request runs (the upstream hangs) and one waits.
    const hold = { model: 'sim-small', messages: [{ role: 'user', content: 'hold' }], x_sim: { fault: 'hang' } };
    for (let i = 0; i < 2; i++) {
      void fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(hold) }).catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 1000));
    const script = join(tmpdir(), 'bulwark-wrk.lua');
    writeFileSync(script, `wrk.method = "POST"\nwrk.body = '${BODY}'\nwrk.headers["Content-Type"] = "application/json"\n`);
    const results: Record<string, ReturnType<typeof parseWrk>> = {};
    for (const connections of connectionCounts) {
      // One wrk thread: the load generator shares this machine's two cores with Bulwark.
      const run = spawnSync('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, `${gateway.url}/v1/chat/completions`], { encoding: 'utf8' });
      results[`${connections} connections`] = parseWrk(run.stdout);
    }
    return results;
  } finally {
    await gateway.stop('SIGKILL');
    await simulator.stop();
    await redis.stop();
  }
}

async function main() {
  const count = Number(process.argv[2] ?? 2000);
  console.log(`node ${process.version}, ${count} sequential requests per path`);
  const overhead = await queueOverhead(count);
  console.table([overhead.direct, overhead.through].map((s) => ({ ...s, p50: s.p50.toFixed(2), p90: s.p90.toFixed(2), p99: s.p99.toFixed(2) })));
  console.log(`added latency of the queue path (ms): p50 ${overhead.added.p50.toFixed(2)}, p90 ${overhead.added.p90.toFixed(2)}, p99 ${overhead.added.p99.toFixed(2)}`);
  const refusals = await refusalCost(10, [8, 64]);
  console.log('refusals under overload (wrk, 1 thread, 10 s each, queue held full, every answer a 503):');
  console.table(refusals);
}

void main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
