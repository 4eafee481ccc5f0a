import { Pool } from 'undici';
import { heyAtRate, type HeyResult, SMALL_CHAT_BODY } from './load-tools';
import { type RuntimeDuringRun, runtimeDuring } from './gateway-runtime';
import { pacedLoad } from './paced-load';
import type { ProxyPath } from './proxy-paths';

/** Latency percentiles of one path, in ms. */
export interface LatencyRow {
  path: string;
  n: number;
  p50: number;
  p90: number;
  p99: number;
}

/** A path's percentiles next to direct's: what the path adds, in ms. */
export interface AddedLatency {
  path: string;
  p50: number;
  p90: number;
  p99: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** What each path adds over the first row (direct). */
export function addedOverDirect(rows: LatencyRow[]): AddedLatency[] {
  const direct = rows[0];
  return rows.slice(1).map((r) => ({ path: r.path, p50: r.p50 - direct.p50, p90: r.p90 - direct.p90, p99: r.p99 - direct.p99 }));
}

async function timeSequential(url: string, count: number, warmUp: number): Promise<number[]> {
  const { origin, pathname } = new URL(url);
  const pool = new Pool(origin, { connections: 1, pipelining: 1 });
  const durations: number[] = [];
  try {
    for (let i = 0; i < count + warmUp; i++) {
      const started = process.hrtime.bigint();
      const res = await pool.request({ path: pathname, method: 'POST', headers: { 'content-type': 'application/json' }, body: SMALL_CHAT_BODY });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`${url}: status ${res.statusCode} after ${i} requests: ${text}`);
      if (i >= warmUp) durations.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
  } finally {
    await pool.close();
  }
  return durations;
}

/**
 * Sequential requests on one keep-alive connection, at low load: each path's own latency. The first
 * `warmUp` requests of each path (JIT, pools, Redis connections) are not counted.
 */
export async function sequentialLatency(paths: ProxyPath[], count: number, warmUp = 200): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  for (const path of paths) {
    const sorted = (await timeSequential(path.url, count, warmUp)).sort((a, b) => a - b);
    rows.push({ path: path.name, n: sorted.length, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99) });
  }
  return rows;
}

/** One path at a fixed request rate (hey), with the answers it got. */
export interface FixedRateRow extends LatencyRow {
  requestsPerSecond: number;
  /** Requests not answered 200 (other statuses and errors). */
  failed: number;
  /** The gateway's event-loop delay and garbage collection during the run (Bulwark only). */
  runtime?: RuntimeDuringRun;
}

/** Latency of each path at a fixed `rate` over `connections` keep-alive connections (`hey -q`: in bursts). */
export async function fixedRateLatency(paths: ProxyPath[], rate: number, connections: number, seconds: number): Promise<FixedRateRow[]> {
  const rows: FixedRateRow[] = [];
  for (const path of paths) {
    const result: HeyResult = await heyAtRate(path.url, rate, connections, seconds);
    rows.push({
      path: path.name,
      n: result.total,
      p50: result.p50,
      p90: result.p90,
      p99: result.p99,
      requestsPerSecond: result.requestsPerSecond,
      failed: result.total - (result.statuses['200'] ?? 0),
    });
  }
  return rows;
}

/** Latency of each path at a fixed `rate`, requests evenly spaced, over at most `connections` connections. */
export async function pacedLatency(paths: ProxyPath[], rate: number, connections: number, seconds: number): Promise<FixedRateRow[]> {
  const rows: FixedRateRow[] = [];
  for (const path of paths) {
    const load = () => pacedLoad(path.url, rate, connections, seconds);
    const { result, runtime } = path.name === 'Bulwark' ? await runtimeDuring(new URL(path.url).origin, load) : { result: await load(), runtime: undefined };
    const sorted = result.latenciesMs.sort((a, b) => a - b);
    rows.push({
      path: path.name,
      n: result.total,
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      requestsPerSecond: result.requestsPerSecond,
      failed: result.failed,
      runtime,
    });
  }
  return rows;
}
