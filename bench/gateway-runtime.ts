/** Node runtime figures of a gateway, from the default process metrics on its `/metrics`. */
interface RuntimeScrape {
  /** Longest event-loop delay since the previous scrape (prom-client resets it on every scrape), ms. */
  lagMaxMs: number;
  lagP99Ms: number;
  /** Garbage collection so far, every kind: total pause time (ms), pauses, pauses of 10 ms or more. */
  gcMs: number;
  gcPauses: number;
  gcPausesOver10Ms: number;
}

/** What the gateway's runtime did during a run: event-loop delay and garbage collection. */
export interface RuntimeDuringRun {
  lagMaxMs: number;
  lagP99Ms: number;
  gcMs: number;
  gcPauses: number;
  gcPausesOver10Ms: number;
}

async function scrape(gatewayUrl: string): Promise<RuntimeScrape> {
  const res = await fetch(`${gatewayUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
  const gauge = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
  const sum = (pattern: RegExp) => [...text.matchAll(pattern)].reduce((total, m) => total + Number(m[1]), 0);
  return {
    lagMaxMs: gauge('nodejs_eventloop_lag_max_seconds') * 1000,
    lagP99Ms: gauge('nodejs_eventloop_lag_p99_seconds') * 1000,
    gcMs: sum(/^nodejs_gc_duration_seconds_sum\{[^}]*\} ([\d.e+-]+)$/gm) * 1000,
    gcPauses: sum(/^nodejs_gc_duration_seconds_count\{[^}]*\} ([\d.e+-]+)$/gm),
    gcPausesOver10Ms:
      sum(/^nodejs_gc_duration_seconds_count\{[^}]*\} ([\d.e+-]+)$/gm) - sum(/^nodejs_gc_duration_seconds_bucket\{le="0\.01",[^}]*\} ([\d.e+-]+)$/gm),
  };
}

/** Runs `run` and reports the gateway's event-loop delay and garbage collection meanwhile. */
export async function runtimeDuring<T>(gatewayUrl: string, run: () => Promise<T>): Promise<{ result: T; runtime: RuntimeDuringRun }> {
  // This first scrape also resets the event-loop delay histogram.
  const before = await scrape(gatewayUrl);
  const result = await run();
  const after = await scrape(gatewayUrl);
  return {
    result,
    runtime: {
      lagMaxMs: after.lagMaxMs,
      lagP99Ms: after.lagP99Ms,
      gcMs: after.gcMs - before.gcMs,
      gcPauses: after.gcPauses - before.gcPauses,
      gcPausesOver10Ms: after.gcPausesOver10Ms - before.gcPausesOver10Ms,
    },
  };
}
