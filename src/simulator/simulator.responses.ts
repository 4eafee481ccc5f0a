/**
 * Pure builders for the simulator's OpenAI/vLLM wire-format bodies.
 * Kept free of I/O so the shapes can be read (and reasoned about) in one place.
 */

/** Fixed `created` stamp for model entries so that listings are reproducible. */
const MODEL_CREATED = 1_700_000_000;

/** Dimension of simulated embedding vectors. */
export const EMBEDDING_DIMENSIONS = 8;

/** Nominal slot count used for the KV-cache gauge when capacity is unlimited. */
const NOMINAL_CAPACITY = 32;

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Present when the replica has a prefix cache: the prompt tokens it found cached. */
  prompt_tokens_details?: { cached_tokens: number };
}

/** The `error` object OpenAI returns for every non-2xx answer. */
export function errorBody(
  message: string,
  type: string,
  code: string | null = null,
  param: string | null = null,
): OpenAiErrorBody {
  return { error: { message, type, param, code } };
}

/** Error body for an injected `error` fault, typed the way OpenAI types that status. */
export function faultErrorBody(status: number): OpenAiErrorBody {
  if (status === 429) {
    return errorBody('Rate limit reached (simulated).', 'rate_limit_error', 'rate_limit_exceeded');
  }
  if (status >= 500) {
    return errorBody(`The server had an error while processing your request (simulated ${status}).`, 'server_error');
  }
  return errorBody(`Simulated client error ${status}.`, 'invalid_request_error');
}

export function modelNotFoundBody(model: string): OpenAiErrorBody {
  return errorBody(`The model \`${model}\` does not exist.`, 'invalid_request_error', 'model_not_found', 'model');
}

/** Deterministic completion words; the concatenation of stream deltas equals the non-stream text. */
export function completionWords(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `word${i + 1} `);
}

/** Rough, deterministic token estimate: whitespace-separated words of every text found. */
export function countTokens(value: unknown): number {
  if (typeof value === 'string') return value.split(/\s+/).filter(Boolean).length;
  if (Array.isArray(value)) return value.reduce<number>((sum, v) => sum + countTokens(v), 0);
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return countTokens(record.content) + countTokens(record.text);
  }
  return 0;
}

export function usage(promptTokens: number, completionTokens: number, cachedTokens?: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    ...(cachedTokens === undefined ? {} : { prompt_tokens_details: { cached_tokens: Math.min(cachedTokens, promptTokens) } }),
  };
}

/** One model object, as `GET /v1/models/{id}` answers it. */
export function modelObject(id: string): unknown {
  return { id, object: 'model', created: MODEL_CREATED, owned_by: 'bulwark-sim' };
}

export function modelList(models: readonly string[]): unknown {
  return { object: 'list', data: models.map(modelObject) };
}

/** Identity shared by every body (and every chunk) of one answer. */
export interface AnswerMeta {
  id: string;
  created: number;
  model: string;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls';

/** One choice of a chat completion, built by the answer from its planned output. */
export interface ChatChoice {
  message: Record<string, unknown>;
  finish: FinishReason;
}

export function chatCompletion(meta: AnswerMeta, choices: readonly ChatChoice[], use: Usage): unknown {
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: choices.map((choice, index) => ({ index, message: choice.message, finish_reason: choice.finish, logprobs: null })),
    usage: use,
  };
}

export function textCompletion(meta: AnswerMeta, choices: readonly { text: string; finish: FinishReason }[], use: Usage): unknown {
  return {
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    choices: choices.map((choice, index) => ({ text: choice.text, index, finish_reason: choice.finish, logprobs: null })),
    usage: use,
  };
}

/** One streamed chat chunk for choice `index`; `delta === null` plus `use` makes the trailing usage chunk. */
export function chatChunk(
  meta: AnswerMeta,
  delta: Record<string, unknown> | null,
  finish: FinishReason | null = null,
  use?: Usage,
  index = 0,
): unknown {
  const choices = delta === null ? [] : [{ index, delta, finish_reason: finish, logprobs: null }];
  return {
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: meta.model,
    choices,
    ...(use ? { usage: use } : {}),
  };
}

/** One streamed legacy completion chunk for choice `index`; `text === null` makes the trailing usage chunk. */
export function textChunk(meta: AnswerMeta, text: string | null, finish: FinishReason | null = null, use?: Usage, index = 0): unknown {
  const choices = text === null ? [] : [{ text, index, finish_reason: finish, logprobs: null }];
  return {
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    choices,
    ...(use ? { usage: use } : {}),
  };
}

/** Deterministic vector in [-1, 1) derived from an FNV-1a hash of the text. */
export function embeddingVector(text: string): number[] {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  const vector: number[] = [];
  for (let i = 0; i < EMBEDDING_DIMENSIONS; i++) {
    hash = (Math.imul(hash ^ (hash >>> 13), 0x5bd1e995) + i) >>> 0;
    vector.push(Math.round((hash / 0x80000000 - 1) * 1e6) / 1e6);
  }
  return vector;
}

/** A vector as OpenAI's `encoding_format: "base64"` sends it: little-endian float32 bytes in base64. */
export function base64Vector(vector: readonly number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((value, i) => bytes.writeFloatLE(value, i * 4));
  return bytes.toString('base64');
}

export function embeddings(model: string, inputs: readonly string[], encoding: 'float' | 'base64' = 'float'): unknown {
  const promptTokens = countTokens(inputs);
  return {
    object: 'list',
    data: inputs.map((text, index) => {
      const vector = embeddingVector(text);
      return { object: 'embedding', index, embedding: encoding === 'base64' ? base64Vector(vector) : vector };
    }),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

/** Per-model load used to render the vLLM-style gauges. */
export interface ModelLoad {
  running: number;
  waiting: number;
}

/** Prometheus text exposition of the vLLM gauges a gateway typically scrapes. */
/** What the replica adds to its per-model gauges: its KV-cache use (when it has a prefix cache) and prefix-cache counters. */
export interface ReplicaFigures {
  kvUsage?: number;
  prefixCacheQueries: number;
  prefixCacheHits: number;
}

export function metricsText(models: readonly string[], load: (model: string) => ModelLoad, capacity: number, replica?: ReplicaFigures): string {
  const slots = capacity > 0 ? capacity : NOMINAL_CAPACITY;
  const gauges: Array<[name: string, help: string, value: (l: ModelLoad) => number]> = [
    ['vllm:num_requests_running', 'Number of requests currently running on GPU.', (l) => l.running],
    ['vllm:num_requests_waiting', 'Number of requests waiting to be processed.', (l) => l.waiting],
    ['vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', (l) => replica?.kvUsage ?? Math.min(1, l.running / slots)],
  ];
  const lines: string[] = [];
  for (const [name, help, value] of gauges) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const model of models) {
      const label = model.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
      lines.push(`${name}{model_name="${label}"} ${value(load(model))}`);
    }
  }
  if (replica) {
    // One cache per replica: the counters carry no model label (a sum over label sets stays right).
    lines.push('# HELP vllm:prefix_cache_queries Prefix-cache queries, in tokens.', '# TYPE vllm:prefix_cache_queries counter');
    lines.push(`vllm:prefix_cache_queries ${replica.prefixCacheQueries}`);
    lines.push('# HELP vllm:prefix_cache_hits Prefix-cache hits, in tokens.', '# TYPE vllm:prefix_cache_hits counter');
    lines.push(`vllm:prefix_cache_hits ${replica.prefixCacheHits}`);
  }
  return lines.join('\n') + '\n';
}
