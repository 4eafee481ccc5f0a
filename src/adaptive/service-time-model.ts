/** What a finished upstream call tells the model: its duration, its first-token time (streams), its size. */
export interface ServiceSample {
  durationMs: number;
  /** Time to the first streamed event; undefined for a JSON answer. */
  timeToFirstTokenMs?: number;
  /** Tokens the answer held (`usage.completion_tokens`, or streamed chunks counted). */
  completionTokens?: number;
}

/** The size of one request, as far as it can be read before it runs. */
export interface RequestSize {
  /** `max_tokens` / `max_completion_tokens` / `max_output_tokens`, when the request sets one. */
  maxTokens?: number;
  /** Approximate prompt tokens (characters / 4). */
  promptTokens?: number;
}

/** Samples needed before an estimate is given: with less, nobody is refused on size. */
export const MIN_SAMPLES = 3;
const ALPHA = 0.2;
/** A prompt this long (in tokens) doubles the time to first token; longer ones add no more (prefill is fast). */
const PROMPT_TOKENS_DOUBLING_TTFT = 8192;

function ewma(previous: number | undefined, sample: number): number {
  return previous === undefined ? sample : ALPHA * sample + (1 - ALPHA) * previous;
}

/**
 * Learns one model's service time from its completed calls: a time to first token and a time per
 * output token (EWMAs), and the usual answer length. A stream gives both parts; a JSON answer gives
 * the whole time, from which the learned first-token time (0 until a stream taught one) is taken off.
 */
export class ServiceTimeModel {
  private ttftMs?: number;
  private msPerToken?: number;
  private outputTokens?: number;
  private samples = 0;
  /** EWMA moments of JSON answers' (tokens, duration): a fixed part and a per-token rate, once sizes vary. */
  private json?: { x: number; y: number; xx: number; xy: number };

  /** Learns from one successful call; calls without a token count teach nothing. */
  record(sample: ServiceSample): void {
    const tokens = sample.completionTokens;
    if (!(tokens !== undefined && tokens > 0 && Number.isFinite(sample.durationMs) && sample.durationMs >= 0)) return;
    let generationMs: number;
    if (sample.timeToFirstTokenMs !== undefined && sample.timeToFirstTokenMs >= 0) {
      this.ttftMs = ewma(this.ttftMs, sample.timeToFirstTokenMs);
      generationMs = Math.max(0, sample.durationMs - sample.timeToFirstTokenMs);
    } else {
      generationMs = Math.max(0, sample.durationMs - (this.ttftMs ?? 0));
      this.learnJson(tokens, sample.durationMs);
    }
    this.msPerToken = ewma(this.msPerToken, generationMs / tokens);
    this.outputTokens = ewma(this.outputTokens, tokens);
    this.samples++;
  }

  /** Number of calls learned from. */
  get sampleCount(): number {
    return this.samples;
  }

  /** Average answer length in tokens, once known. */
  get averageOutputTokens(): number | undefined {
    return this.outputTokens;
  }

  /**
   * Expected service time of a request of `size`, in ms: first-token time (slightly longer for long
   * prompts) plus its output tokens (its `max_tokens`, else the usual answer length) at the learned
   * rate. Undefined until {@link MIN_SAMPLES} calls were learned: a cold model refuses nobody on size.
   */
  estimateMs(size: RequestSize): number | undefined {
    if (this.samples < MIN_SAMPLES || this.msPerToken === undefined || this.outputTokens === undefined) return undefined;
    return this.predictMs(size.maxTokens ?? this.outputTokens, size.promptTokens);
  }

  /** The model's prediction for an answer of exactly `tokens`, for measuring its own error. */
  predictMs(tokens: number, promptTokens = 0): number | undefined {
    if (this.msPerToken === undefined) return undefined;
    const line = this.ttftMs === undefined ? this.jsonLine() : undefined;
    const fixedMs = line ? line.fixedMs : (this.ttftMs ?? 0);
    const perToken = line ? line.perTokenMs : this.msPerToken;
    const ttft = fixedMs * (1 + Math.min(1, Math.max(0, promptTokens) / PROMPT_TOKENS_DOUBLING_TTFT));
    return ttft + Math.max(0, tokens) * perToken;
  }

  private learnJson(tokens: number, durationMs: number): void {
    const j = this.json;
    const at = (previous: number | undefined, value: number) => ewma(previous, value);
    this.json = { x: at(j?.x, tokens), y: at(j?.y, durationMs), xx: at(j?.xx, tokens * tokens), xy: at(j?.xy, tokens * durationMs) };
  }

  /**
   * JSON answers alone do not say how much of a call is fixed (queueing at the upstream, prefill, the
   * connection) and how much grows with its length; once their sizes vary enough, a least-squares line
   * through the weighted samples does, so a slow short call does not price every token of a long one.
   */
  private jsonLine(): { fixedMs: number; perTokenMs: number } | undefined {
    const j = this.json;
    if (!j) return undefined;
    const variance = j.xx - j.x * j.x;
    if (!(variance > (0.25 * j.x) ** 2)) return undefined;
    const perTokenMs = (j.xy - j.x * j.y) / variance;
    const fixedMs = j.y - perTokenMs * j.x;
    if (!(perTokenMs > 0) || fixedMs < 0) return undefined;
    return { fixedMs, perTokenMs };
  }
}

/** Reads a request's size from its body: the first output-token limit it sets, and its prompt's length. */
export function requestSize(body: unknown): RequestSize {
  if (typeof body !== 'object' || body === null) return {};
  const b = body as Record<string, unknown>;
  const limit = [b.max_tokens, b.max_completion_tokens, b.max_output_tokens].find(
    (v): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0,
  );
  return { maxTokens: limit, promptTokens: Math.ceil(promptChars(b.messages ?? b.prompt ?? b.input) / 4) };
}

/** Characters of text in a prompt (string, list of strings, chat messages with string or part contents); bounded work. */
function promptChars(value: unknown, depth = 0): number {
  if (typeof value === 'string') return value.length;
  if (depth > 3 || typeof value !== 'object' || value === null) return 0;
  if (Array.isArray(value)) return value.slice(0, 1000).reduce((sum: number, item) => sum + promptChars(item, depth + 1), 0);
  const record = value as Record<string, unknown>;
  return promptChars(record.content ?? record.text, depth + 1);
}
