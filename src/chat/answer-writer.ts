import { once } from 'node:events';
import type { FastifyReply } from 'fastify';
import { toErrorResponse } from '../common/error-response';
import { CancelledError } from '../common/errors';
import { SSE_DONE, sseEvent } from '../upstream/sse';
import type { QueueStatus } from '../queue/queued-wait';
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
  /**
   * A stored event log read back (a background response): the error event of a failure of the reading
   * carries no sequence_number, which would otherwise be taken by the log's next event and make a
   * client that resumes after it miss that event.
   */
  logged?: boolean;
}

/** Sends a JSON answer with the pipeline's headers. */
export function sendJson(reply: FastifyReply, answer: { status: number; body: unknown }, headers: Record<string, string>): void {
  void reply.status(answer.status).headers(headers).send(answer.body);
}

/** Starts an SSE answer (status 200 and the stream's headers) unless it was started already. */
export function openSse(reply: FastifyReply, headers: Record<string, string>): void {
  if (reply.raw.headersSent) return;
  reply.hijack();
  reply.raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    ...headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  reply.raw.flushHeaders();
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
  openSse(reply, headers);
  const res = reply.raw;
  const framer = options.namedEvents ? new ResponsesEventFramer() : undefined;
  try {
    for await (const data of events) {
      const frame = framer ? framer.frame(data) : sseEvent(data);
      if (!res.write(frame)) await once(res, 'drain', { signal });
    }
    if (!framer) res.write(sseEvent(SSE_DONE));
  } catch (error) {
    const reason = signal.aborted ? signal.reason : error;
    if (!(reason instanceof CancelledError)) endSseWithError(reply, reason, options, framer);
  } finally {
    if (!res.writableEnded) res.end();
  }
}

/** Ends an open SSE answer with the error event of its framing (and `[DONE]` for chat and completions). */
export function endSseWithError(reply: FastifyReply, error: unknown, options: RelayOptions = {}, framer?: ResponsesEventFramer): void {
  const res = reply.raw;
  if (res.destroyed || res.writableEnded) return;
  const body = toErrorResponse(error).body;
  if (options.namedEvents) {
    res.write((framer ?? new ResponsesEventFramer()).error(body.error, !options.logged));
  } else {
    res.write(sseEvent(JSON.stringify(body)));
    res.write(sseEvent(SSE_DONE));
  }
  res.end();
}

/**
 * Tells a waiting streamed request where it stands, as SSE comment lines (`: queued position=3
 * wait_ms=1800`), which every SSE client ignores; the stream opens with the first one.
 */
export function writeQueueStatus(reply: FastifyReply, status: QueueStatus): void {
  openSse(reply, {});
  if (reply.raw.destroyed || reply.raw.writableEnded) return;
  const position = status.position === null ? '' : ` position=${status.position}`;
  reply.raw.write(`: queued${position} wait_ms=${Math.max(0, Math.round(status.waitMs))}\n\n`);
}
