/** What a request reserves against its key's token limits before it runs. */
export interface TokenEstimate {
  /** Estimated prompt tokens (characters / 4, rounded up; token-id prompts by their length). */
  promptTokens: number;
  /** Output tokens reserved: the request's output limit × `n`, or the default when it sets none. */
  outputTokens: number;
  /** The output-limit field the request set (named in a 400 when it could never fit), or `max_tokens`. */
  param: string;
  /** True when the request set no output limit and the default was reserved. */
  defaulted: boolean;
  /** The field that holds the prompt: `messages`, `prompt` or `input`. */
  promptParam: string;
}

const OUTPUT_FIELDS = ['max_completion_tokens', 'max_tokens', 'max_output_tokens'] as const;
const MAX_DEPTH = 6;
const MAX_ITEMS = 10_000;

/** Characters of text in a prompt, or the count of token ids; bounded work whatever the body holds. */
function promptUnits(value: unknown, depth = 0): number {
  if (typeof value === 'string') return value.length / 4;
  if (typeof value === 'number') return 1;
  if (depth > MAX_DEPTH || typeof value !== 'object' || value === null) return 0;
  if (Array.isArray(value)) return value.slice(0, MAX_ITEMS).reduce((sum: number, item) => sum + promptUnits(item, depth + 1), 0);
  const record = value as Record<string, unknown>;
  return promptUnits(record.content, depth + 1) + promptUnits(record.text, depth + 1) + promptUnits(record.arguments, depth + 1) + promptUnits(record.output, depth + 1);
}

/**
 * The worst case of a chat, completions, responses or embeddings body: its prompt's estimate plus its
 * output limit (`max_completion_tokens`, `max_tokens` or `max_output_tokens`, times `n`), or
 * `defaultMaxTokens` when it sets none. Embeddings have no output.
 */
export function estimateTokens(body: unknown, embeddings: boolean, defaultMaxTokens: number): TokenEstimate {
  const b = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const promptParam = embeddings ? 'input' : b.messages !== undefined ? 'messages' : b.prompt !== undefined ? 'prompt' : 'input';
  const prompt = b[promptParam];
  const promptTokens = Math.ceil(promptUnits(prompt) + (typeof b.instructions === 'string' ? b.instructions.length / 4 : 0));
  if (embeddings) return { promptTokens, outputTokens: 0, param: 'input', defaulted: false, promptParam };
  const field = OUTPUT_FIELDS.find((name) => typeof b[name] === 'number' && Number.isFinite(b[name]) && (b[name] as number) >= 0);
  const n = typeof b.n === 'number' && Number.isInteger(b.n) && b.n > 1 ? b.n : 1;
  if (!field) return { promptTokens, outputTokens: defaultMaxTokens * n, param: 'max_tokens', defaulted: true, promptParam };
  return { promptTokens, outputTokens: Math.ceil(b[field] as number) * n, param: field, defaulted: false, promptParam };
}
