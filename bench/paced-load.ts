import { Pool } from 'undici';
import { SMALL_CHAT_BODY } from './load-tools';

/** Latencies of an evenly paced, open-loop run, in ms. */
export interface PacedResult {
  requestsPerSecond: number;
  total: number;
  /** Requests not answered 200. */
  failed: number;
  /** Latency from each request's scheduled send time, or its send time when sent early (ms). */
  latenciesMs: number[];
}

/**
 * Sends one request every `1000 / rate` ms for `seconds`, whatever the answers do (open loop), over at
 * most `connections` keep-alive connections. Unlike `hey -q`, whose workers all fire on the same tick
 * (bursts of `connections` requests), the load is spread evenly.
 */
export async function pacedLoad(url: string, rate: number, connections: number, seconds: number): Promise<PacedResult> {
  const { origin, pathname } = new URL(url);
  const pool = new Pool(origin, { connections, pipelining: 1 });
  const intervalMs = 1000 / rate;
  const count = Math.round(rate * seconds);
  const latenciesMs: number[] = [];
  let failed = 0;
  const inFlight: Promise<void>[] = [];
  const started = performance.now();
  try {
    for (let i = 0; i < count; i++) {
      const due = started + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      // Late: count the lateness as waiting (no coordinated omission); early by less than a timer tick: from now.
      const from = Math.min(due, performance.now());
      inFlight.push(
        pool
          .request({ path: pathname, method: 'POST', headers: { 'content-type': 'application/json' }, body: SMALL_CHAT_BODY, headersTimeout: 30_000, bodyTimeout: 30_000 })
          .then(async (res) => {
            await res.body.text();
            if (res.statusCode === 200) latenciesMs.push(performance.now() - from);
            else failed++;
          })
          .catch(() => void failed++),
      );
    }
    await Promise.all(inFlight);
  } finally {
    await pool.close();
  }
  return { requestsPerSecond: count / ((performance.now() - started) / 1000), total: count, failed, latenciesMs };
}
