/** The simulator's options, faults and counters: what tests and the CLI configure and read. */

/** A misbehaviour to inject into one request (body field `x_sim`) or every request of a model. */
export interface SimulatedFault {
  fault?: 'none' | 'hang' | 'error' | 'reset' | 'stall' | 'bad_json';
  /** Status for `error` (default 500). */
  status?: number;
  /** Seconds; sets `Retry-After` on `error`. */
  retryAfter?: number;
  /** For `stall` (default 2): content chunks sent before the stream goes silent with the socket open. */
  stallAfterChunks?: number;
  /** Overrides the time before the first byte. */
  latencyMs?: number;
  /** Content chunks in a stream / words in a completion. */
  chunks?: number;
  /**
   * Applies the fault to the first `times` requests only; later ones are served normally. Counted per
   * `key` for an `x_sim` fault, per model for a model fault (`configure({modelFaults})` restarts it).
   */
  times?: number;
  /** Names the `times` counter of an `x_sim` fault: requests with the same key share it. Default: the model. */
  key?: string;
}

/** Behaviour of an {@link UpstreamSimulator}; every field may be changed at run time via `configure`. */
export interface SimulatorOptions {
  /** Served model ids; default `['sim-small', 'sim-large']`. */
  models?: string[];
  /** Delay before the first byte / before a non-stream answer; default 20. */
  latencyMs?: number;
  /** Delay between stream chunks; default 10. */
  chunkIntervalMs?: number;
  /** Words per completion when neither `x_sim.chunks` nor `max_tokens` limit it; default 8. */
  defaultChunks?: number;
  /** Requests served at once (0 = unlimited, the default); the rest wait in FIFO order. */
  capacity?: number;
  /** When set, every /v1 route requires `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Default fault per model, used when a request carries no `x_sim`. */
  modelFaults?: Record<string, SimulatedFault>;
  /**
   * Tokens this replica's prefix cache holds (least recently used blocks evicted first); 0 (the
   * default) turns prefix caching off. With it on, `usage` reports the cached prompt tokens.
   */
  prefixCacheTokens?: number;
  /** Tokens per prefix-cache block (vLLM's block size); default 16. */
  blockTokens?: number;
  /** Time to first token added per prompt token not found in the prefix cache (prefill); default 0. */
  prefillMsPerToken?: number;
  /** Stalls `share` (0..1, spread evenly) of generation calls for `ms` before their first byte; default none. */
  stall?: { share: number; ms: number };
}

/** Counters and gauges observed by the simulator; see {@link UpstreamSimulator.stats}. */
export interface SimulatorStats {
  /** Every HTTP request to /v1/*. */
  requestsTotal: number;
  requestsByPath: Record<string, number>;
  /** /v1 requests being handled now, including those waiting for capacity. */
  inFlight: number;
  /** High-water mark of running (not waiting) requests. */
  maxInFlight: number;
  running: number;
  waiting: number;
  /** Requests whose client closed the connection before the answer finished. */
  clientAborts: number;
  /** Answers sent in full. */
  completed: number;
  /** Headers of the last /v1 request. */
  lastHeaders?: Record<string, string | string[] | undefined>;
  /** Parsed JSON body of the last /v1 POST. */
  lastBody?: unknown;
  /** Generation calls held back by the `stall` option. */
  stalled: number;
  /** Prompt tokens looked up in the prefix cache, and those found (whole blocks). */
  prefixCacheQueries: number;
  prefixCacheHits: number;
  /** Generation requests by their OpenAI `user` field, which tests use to tag requests. */
  requestsByUser: Record<string, number>;
  /** High-water mark of requests of one `user` served at once. */
  maxInFlightByUser: Record<string, number>;
  /** The `user` of each generation request, in the order they started running (the first 100,000). */
  startedUsers: string[];
  /** Generation requests answered in full, by their `user`. */
  completedByUser: Record<string, number>;
}
