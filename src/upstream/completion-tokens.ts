/** `usage.completion_tokens` of a JSON answer, when it reports one. */
export function completionTokensOf(body: unknown): number | undefined {
  const usage = typeof body === 'object' && body !== null ? (body as { usage?: { completion_tokens?: unknown } }).usage : undefined;
  const tokens = usage?.completion_tokens;
  return typeof tokens === 'number' && Number.isFinite(tokens) && tokens >= 0 ? tokens : undefined;
}

/**
 * Counts the output tokens of a stream: one per content event (what vLLM and OpenAI send), replaced by
 * the final usage chunk's `completion_tokens` when the stream carries one (`stream_options.include_usage`).
 */
export class StreamTokenCounter {
  private events = 0;
  private reported?: number;

  /** Feeds one SSE `data` payload. */
  observe(event: string): void {
    if (event === '[DONE]') return;
    // Only the rare usage chunk is parsed; the count of the others costs nothing.
    if (event.includes('"completion_tokens"')) {
      try {
        const reported = completionTokensOf(JSON.parse(event));
        if (reported !== undefined) {
          this.reported = reported;
          return;
        }
      } catch {
        // Not JSON: counted like any other event.
      }
    }
    if (event.includes('"content"') || event.includes('"text"')) this.events++;
  }

  get tokens(): number {
    return this.reported ?? this.events;
  }
}

/** Passes a stream's events through unchanged, showing each to `counter` (return() is passed on). */
export function countedEvents(rest: AsyncIterable<string>, counter: StreamTokenCounter): AsyncIterable<string> {
  const inner = rest[Symbol.asyncIterator]();
  const iterator: AsyncIterator<string> = {
    async next() {
      const result = await inner.next();
      if (!result.done) counter.observe(result.value);
      return result;
    },
    async return() {
      return (await inner.return?.()) ?? { done: true, value: undefined };
    },
  };
  return { [Symbol.asyncIterator]: () => iterator };
}
