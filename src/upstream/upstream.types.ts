import type { UpstreamDefinition } from '../config/upstreams-file';

export type { UpstreamDefinition };

/** The OpenAI routes that go through the pipeline, keyed by their path below the base URL. */
export type InferencePath = '/chat/completions' | '/completions' | '/embeddings' | '/responses';

/** What the gateway forwards: the client's body (unknown fields untouched) and how to answer. */
export interface InferencePayload {
  path: InferencePath;
  model: string;
  body: Record<string, unknown>;
  stream: boolean;
  /** The `X-Session-Id` header: prefix-aware routing's affinity key when the body has no `prompt_cache_key` or `user`. */
  affinityKey?: string;
}

export interface UpstreamJsonAnswer {
  kind: 'json';
  status: number;
  body: unknown;
}

/**
 * A streamed answer. `first` holds the events read before the answer was committed (at least one), so
 * failover before the first byte is possible; `rest` yields the following `data` payloads, without the
 * final `[DONE]`, and throws a typed error if the stream breaks.
 */
export interface UpstreamStreamAnswer {
  kind: 'stream';
  status: number;
  first: string[];
  rest: AsyncIterable<string>;
}

export type UpstreamAnswer = UpstreamJsonAnswer | UpstreamStreamAnswer;

/** An answer and who gave it; `hedged` when a hedged attempt (a second upstream, started late) gave it. */
export type ServedAnswer = UpstreamAnswer & { upstream: string; model: string; hedged?: boolean };
