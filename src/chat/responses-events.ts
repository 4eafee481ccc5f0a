import { sseEvent } from '../upstream/sse';

/** SSE event names are written on their own line: only plain tokens are safe to repeat there. */
const EVENT_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * Frames a Responses API stream as OpenAI and vLLM do: every event's JSON carries a `type`, which is
 * also its SSE `event:` name. Keeps the last `sequence_number` seen so that an error event that ends a
 * broken stream follows on from it.
 */
export class ResponsesEventFramer {
  private lastSequence = -1;

  /** One upstream `data` payload, framed with its `event:` line when it names a type. */
  frame(data: string): string {
    let type: unknown;
    try {
      const event = JSON.parse(data) as { type?: unknown; sequence_number?: unknown };
      type = event?.type;
      if (typeof event?.sequence_number === 'number') this.lastSequence = event.sequence_number;
    } catch {
      // The upstream client checks every event; this is only a safety net for the name.
    }
    return sseEvent(data, typeof type === 'string' && EVENT_NAME.test(type) ? type : undefined);
  }

  /**
   * The Responses API's `error` event (`{type, code, message, param, sequence_number}`) for a failure
   * mid-stream; `numbered: false` leaves the sequence_number out.
   */
  error(error: { message: string; code: string | null; param: string | null }, numbered = true): string {
    const base = { type: 'error', code: error.code, message: error.message, param: error.param };
    const event = numbered ? { ...base, sequence_number: this.lastSequence + 1 } : base;
    return sseEvent(JSON.stringify(event), 'error');
  }
}
