import { parsePrometheusText } from '../metrics/prometheus-text';

/** Load figures of one upstream, read from its own `/metrics`. */
export interface VllmLoad {
  /** Requests queued inside the upstream (summed over every label set, e.g. every model). */
  waiting: number;
  /** Requests being generated now (summed). */
  running: number;
  /** KV-cache use 0..1; the highest label set's, since a ratio summed over label sets could pass 1. */
  kvCacheUsage?: number;
  /** Prefix-cache counters (tokens queried and found cached since the server started), summed. */
  prefixCacheQueries?: number;
  prefixCacheHits?: number;
}

const WAITING = 'vllm:num_requests_waiting';
const RUNNING = 'vllm:num_requests_running';
/** Newer vLLM names it `kv_cache_usage_perc`; releases before 0.10 named it `gpu_cache_usage_perc`. */
const KV_CACHE = new Set(['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc']);
/** vLLM's prefix-cache counters, as exposed with and without the Prometheus `_total` suffix. */
const PREFIX_QUERIES = new Set(['vllm:prefix_cache_queries', 'vllm:prefix_cache_queries_total']);
const PREFIX_HITS = new Set(['vllm:prefix_cache_hits', 'vllm:prefix_cache_hits_total']);

/**
 * Extracts vLLM's load gauges from a Prometheus text body. Undefined when the body has neither
 * `vllm:num_requests_waiting` nor `vllm:num_requests_running` (not a vLLM server): the caller then
 * has nothing to report. Malformed lines and non-finite values are ignored.
 */
export function parseVllmLoad(text: string): VllmLoad | undefined {
  let waiting: number | undefined;
  let running: number | undefined;
  let kvCacheUsage: number | undefined;
  let queries: number | undefined;
  let hits: number | undefined;
  for (const sample of parsePrometheusText(text)) {
    if (!Number.isFinite(sample.value)) continue;
    if (sample.name === WAITING) waiting = (waiting ?? 0) + Math.max(0, sample.value);
    else if (sample.name === RUNNING) running = (running ?? 0) + Math.max(0, sample.value);
    else if (KV_CACHE.has(sample.name)) kvCacheUsage = Math.max(kvCacheUsage ?? 0, Math.min(1, Math.max(0, sample.value)));
    else if (PREFIX_QUERIES.has(sample.name)) queries = (queries ?? 0) + Math.max(0, sample.value);
    else if (PREFIX_HITS.has(sample.name)) hits = (hits ?? 0) + Math.max(0, sample.value);
  }
  if (waiting === undefined && running === undefined) return undefined;
  return {
    waiting: waiting ?? 0,
    running: running ?? 0,
    ...(kvCacheUsage === undefined ? {} : { kvCacheUsage }),
    ...(queries === undefined || hits === undefined ? {} : { prefixCacheQueries: queries, prefixCacheHits: hits }),
  };
}

/** Adds up the loads of several upstreams: queue counts add, KV-cache use is the busiest upstream's. */
export function combineLoads(loads: readonly VllmLoad[]): Pick<VllmLoad, 'waiting' | 'running' | 'kvCacheUsage'> | undefined {
  if (loads.length === 0) return undefined;
  const kv = loads.map((l) => l.kvCacheUsage).filter((v): v is number => v !== undefined);
  return {
    waiting: loads.reduce((sum, l) => sum + l.waiting, 0),
    running: loads.reduce((sum, l) => sum + l.running, 0),
    ...(kv.length ? { kvCacheUsage: Math.max(...kv) } : {}),
  };
}
