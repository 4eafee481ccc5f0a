import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { startRedis } from '../test/support/redis-server';
import { startBenchGateway } from './bench-gateway';
import { RedisStats } from './redis-stats';

/** One key's run: its limits, what Redis did per request, and the latency clients saw. */
export interface TokenLimitsRow {
  key: string;
  limits: string;
  requests: number;
  /** Script calls (EVALSHA/EVAL) per request: the queue's slot scripts plus the limiter's, if any. */
  scriptCallsPerRequest: number;
  /** Every command Redis ran per request (scripts' inner commands counted too). */
  commandsPerRequest: number;
  /** Time inside Redis commands per request (every commandstats line). */
  redisUsecPerRequest: number;
  p50Ms: number;
  p99Ms: number;
}

const KEYS: { name: string; key: string; limits: Record<string, number>; label: string }[] = [
  { name: 'open', key: 'sk-bench-open-0001', limits: {}, label: 'none' },
  { name: 'requests', key: 'sk-bench-reqs-0002', limits: { requestsPerMinute: 1_000_000 }, label: 'requests/min' },
  { name: 'tokens', key: 'sk-bench-tokens-0003', limits: { tokensPerMinute: 1e12 }, label: 'tokens/min' },
  { name: 'both', key: 'sk-bench-both-0004', limits: { requestsPerMinute: 1_000_000, tokensPerMinute: 1e12, tokensPerDay: 1e12 }, label: 'requests/min + tokens/min + tokens/day' },
];
// The simulator answers 8 words: each request is settled (16 reserved, 8 used), so settlements are measured too.
const BODY = JSON.stringify({ model: 'sim-small', messages: [{ role: 'user', content: 'hi' }], max_tokens: 16 });
const SCRIPT_COMMANDS = ['evalsha', 'eval'];

async function drive(url: string, key: string, count: number, concurrency: number): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const started = performance.now();
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: BODY });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`answered ${res.status}`);
      latencies.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return latencies.sort((a, b) => a - b);
}

/**
 * Redis round trips and time per request with token limits on and off: one gateway, four keys (no limits,
 * a request limit, a token limit, both with a day limit too), the same small chat completion through each.
 * The difference between rows is what the limits cost; with a request limit, token limits should add no
 * script call (they ride in the same one, and settlements ride on later admissions).
 */
export async function tokenLimitsBench(requests = 2000, concurrency = 16): Promise<TokenLimitsRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-keys-'));
  const keysFile = join(dir, 'keys.json');
  writeFileSync(keysFile, JSON.stringify({ keys: KEYS.map((k, i) => ({ name: k.name, keyEnv: `BENCH_KEY_${i}`, ...k.limits })) }));
  const redis = await startRedis();
  const simulator = new UpstreamSimulator({ latencyMs: 0 });
  const stats = new RedisStats(redis.url);
  try {
    const { baseUrl } = await simulator.start();
    const gateway = await startBenchGateway({
      REDIS_URL: redis.url,
      UPSTREAM_URL: baseUrl,
      API_KEYS_FILE: keysFile,
      MAX_CONCURRENT_REQUESTS: '64',
      MAX_QUEUE_SIZE: '1000',
      ...Object.fromEntries(KEYS.map((k, i) => [`BENCH_KEY_${i}`, k.key])),
    });
    try {
      const url = `${gateway.url}/v1/chat/completions`;
      const rows: TokenLimitsRow[] = [];
      for (const k of KEYS) {
        await drive(url, k.key, 200, concurrency);
        const before = await stats.snapshot();
        const latencies = await drive(url, k.key, requests, concurrency);
        // Settlements still waiting for an admission to carry them go alone within 250 ms: count them.
        await new Promise((r) => setTimeout(r, 400));
        const after = await stats.snapshot();
        const delta = (names?: string[]) =>
          [...after.commands].reduce((sum, [command, now]) => {
            if (command === 'info' || (names && !names.includes(command))) return sum;
            const then = before.commands.get(command) ?? { calls: 0, usec: 0 };
            return { calls: sum.calls + now.calls - then.calls, usec: sum.usec + now.usec - then.usec };
          }, { calls: 0, usec: 0 });
        const all = delta();
        rows.push({
          key: k.name,
          limits: k.label,
          requests,
          scriptCallsPerRequest: delta(SCRIPT_COMMANDS).calls / requests,
          commandsPerRequest: all.calls / requests,
          redisUsecPerRequest: all.usec / requests,
          p50Ms: latencies[Math.floor(latencies.length * 0.5)],
          p99Ms: latencies[Math.floor(latencies.length * 0.99)],
        });
      }
      return rows;
    } finally {
      await gateway.stop();
    }
  } finally {
    await stats.close();
    await simulator.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The rows as a Markdown table, each against the key without limits. */
export function tokenLimitsReport(rows: TokenLimitsRow[]): string {
  const base = rows[0];
  const lines = [
    `\n### Token limits: Redis cost per request (${base.requests} small chat completions per key, one gateway)\n`,
    '| key limits | script calls/req | Δ vs none | Redis commands/req | Redis µs/req | p50 ms | p99 ms |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const d = r.scriptCallsPerRequest - base.scriptCallsPerRequest;
    lines.push(
      `| ${r.limits} | ${r.scriptCallsPerRequest.toFixed(2)} | ${d >= 0 ? '+' : ''}${d.toFixed(2)} | ${r.commandsPerRequest.toFixed(2)} | ${r.redisUsecPerRequest.toFixed(1)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} |`,
    );
  }
  return lines.join('\n');
}
