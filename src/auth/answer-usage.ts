/** Tokens an answer used, as its upstream reported them in `usage`. */
export interface AnswerUsage {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens served from the upstream's prefix cache (part of `promptTokens`). */
  cachedTokens: number;
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * Reads a `usage` object of any OpenAI answer: chat and completions (`prompt_tokens`, `completion_tokens`,
 * `prompt_tokens_details.cached_tokens`), embeddings (`prompt_tokens` only) and the Responses API
 * (`input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`). Undefined when it holds no count.
 */
export function readUsage(usage: unknown): AnswerUsage | undefined {
  if (typeof usage !== 'object' || usage === null) return undefined;
  const u = usage as Record<string, unknown>;
  const prompt = count(u.prompt_tokens) ?? count(u.input_tokens);
  const completion = count(u.completion_tokens) ?? count(u.output_tokens);
  if (prompt === undefined && completion === undefined) return undefined;
  const details = (u.prompt_tokens_details ?? u.input_tokens_details) as Record<string, unknown> | null | undefined;
  const cached = typeof details === 'object' && details !== null ? count(details.cached_tokens) : undefined;
  return { promptTokens: prompt ?? 0, completionTokens: completion ?? 0, cachedTokens: cached ?? 0 };
}

/** The `usage` of a JSON answer body (a Responses API object included). */
export function usageOfBody(body: unknown): AnswerUsage | undefined {
  return typeof body === 'object' && body !== null ? readUsage((body as { usage?: unknown }).usage) : undefined;
}

const filled = (data: string, field: string) => data.includes(`"${field}":"`) && !data.includes(`"${field}":""`);

/** True for an event that carries generated output: a Responses API `*.delta`, or a non-empty content, text or arguments piece. */
function carriesOutput(data: string): boolean {
  if (data.includes('"type":"response.')) return data.includes('.delta"');
  return filled(data, 'content') || filled(data, 'text') || filled(data, 'arguments');
}

/**
 * Watches a stream's SSE `data` payloads: the usage chunk (chat and completions with
 * `stream_options.include_usage`) or the Responses API's `response.completed` event gives the usage; else
 * content events are counted, one token each (what vLLM and OpenAI send). Only events that mention usage
 * are parsed; the others cost a substring search.
 */
export class StreamUsageMeter {
  private reported?: AnswerUsage;
  private events = 0;

  observe(data: string): void {
    if (data.includes('"usage"')) {
      try {
        const event = JSON.parse(data) as { usage?: unknown; response?: { usage?: unknown } };
        const usage = readUsage(event.usage) ?? readUsage(event.response?.usage);
        if (usage) {
          this.reported = usage;
          return;
        }
      } catch {
        // Not JSON: counted like any other event.
      }
    }
    if (carriesOutput(data)) this.events++;
  }

  /** The usage the stream reported, if it did. */
  get usage(): AnswerUsage | undefined {
    return this.reported;
  }

  /** Content events relayed so far: the output tokens of a stream without usage. */
  get relayed(): number {
    return this.events;
  }
}
