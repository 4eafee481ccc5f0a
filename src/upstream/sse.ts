const CR = 13;
const LF = 10;

/** Index of the first CR or LF at or after `from`, or -1. */
function lineBreakAt(text: string, from: number): number {
  const cr = text.indexOf('\r', from);
  const lf = text.indexOf('\n', from);
  return cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf);
}

/**
 * Incremental Server-Sent Events parser: feed it byte chunks, get back each event's `data` payload
 * (multi-line data joined with "\n", as the SSE spec says). Comments and other fields are skipped.
 */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private readonly decoder = new TextDecoder('utf-8');

  push(chunk: Uint8Array | string): string[] {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    const buffer = this.buffer === '' ? text : this.buffer + text;
    // Upstreams end lines with LF; a CR anywhere sends the rest through the general line search.
    const plainLf = !buffer.includes('\r');
    const events: string[] = [];
    let start = 0;
    for (;;) {
      const newline = plainLf ? buffer.indexOf('\n', start) : lineBreakAt(buffer, start);
      if (newline === -1) break;
      // A CR that ends the chunk may be the first half of a CRLF split across chunks: wait for the next byte.
      if (newline === buffer.length - 1 && buffer.charCodeAt(newline) === CR) break;
      const line = buffer.slice(start, newline);
      start = newline + (buffer.charCodeAt(newline) === CR && buffer.charCodeAt(newline + 1) === LF ? 2 : 1);
      if (line === '') {
        if (this.data.length > 0) events.push(this.data.length === 1 ? this.data[0] : this.data.join('\n'));
        this.data = [];
      } else if (line.startsWith('data:')) {
        this.data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      }
    }
    this.buffer = start === 0 ? buffer : buffer.slice(start);
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
