import { once } from 'node:events';
import type { FastifyReply } from 'fastify';
import { toErrorResponse } from '../common/error-response';
import { CancelledError } from '../common/errors';
import { SSE_DONE, sseEvent } from '../upstream/sse';
import { ResponsesEventFramer } from './responses-events';

/** A JSON answer ready to send, or a stream of SSE `data` payloads (without `[DONE]`). */
export type Deliverable =
  | { kind: 'json'; status: number; body: unknown }
  | { kind: 'stream'; events: AsyncIterable<string> };

/** How a relayed stream is framed on the wire. */
export interface RelayOptions {
  /**
   * Responses API framing: each event gets an `event:` line named by its `type`, the stream ends without
   * `[DONE]`, and a failure ends it with the Responses API's `error` event.
   */
  namedEvents?: boolean;
}

/** Sends a JSON answer with the pipeline's headers. */
export function sendJson(reply: FastifyReply, answer: { status: number; body: unknown }, headers: Record<string, string>): void {
  void reply.status(answer.status).headers(headers).send(answer.body);
}

/**
 * Relays a stream to the client event by event as it arrives (no buffering). A failure after the first
 * byte ends the stream with an SSE error event (then `[DONE]` for chat and completions), never with a
 * silent close.
 */
export async function relayStream(
  reply: FastifyReply,
  events: AsyncIterable<string>,
  headers: Record<string, string>,
  signal: AbortSignal,
  options: RelayOptions = {},
): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    ...headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();
  const framer = options.namedEvents ? new ResponsesEventFramer() : undefined;
  try {
    for await (const data of events) {
      const frame = framer ? framer.frame(data) : sseEvent(data);
      if (!res.write(frame)) await once(res, 'drain', { signal });
    }
    if (!framer) res.write(sseEvent(SSE_DONE));
  } catch (error) {
    const reason = signal.aborted ? signal.reason : error;
    if (!(reason instanceof CancelledError) && !res.destroyed) {
      const body = toErrorResponse(reason).body;
      if (framer) {
        res.write(framer.error(body.error));
      } else {
        res.write(sseEvent(JSON.stringify(body)));
        res.write(sseEvent(SSE_DONE));
      }
    }
  } finally {
    if (!res.writableEnded) res.end();
  }
}
