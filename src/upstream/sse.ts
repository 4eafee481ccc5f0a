/**
 * Incremental Server-Sent Events parser: feed it byte chunks, get back each event's `data` payload
 * (multi-line data joined with "\n", as the SSE spec says). Comments and other fields are skipped.
 */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private readonly decoder = new TextDecoder('utf-8');

  push(chunk: Uint8Array | string): string[] {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    const events: string[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) !== -1) {
      // A CR that ends the chunk may be the first half of a CRLF split across chunks: wait for the next byte.
      if (newline === this.buffer.length - 1 && this.buffer[newline] === '\r') break;
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith('\r\n', newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      if (line === '') {
        if (this.data.length > 0) events.push(this.data.join('\n'));
        this.data = [];
      } else if (line.startsWith('data:')) {
        this.data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      }
    }
    return events;
  }

  /** Flushes an event left without its blank line when the stream ended. */
  end(): string[] {
    const rest = this.push('\n\n');
    this.buffer = '';
    return rest;
  }
}

/** Frames one SSE event as OpenAI does; with `name`, as a named event (`event:` line, as the Responses API does). */
export function sseEvent(data: string, name?: string): string {
  return name === undefined ? `data: ${data}\n\n` : `event: ${name}\ndata: ${data}\n\n`;
}

export const SSE_DONE = '[DONE]';
