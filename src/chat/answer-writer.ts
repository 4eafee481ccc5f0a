import { once } from 'node:events';
import type { FastifyReply } from 'fastify';
import { toErrorResponse } from '../common/error-response';
import { CancelledError } from '../common/errors';
import { SSE_DONE, sseEvent } from '../upstream/sse';

/** A JSON answer ready to send, or a stream of SSE `data` payloads (without `[DONE]`). */
export type Deliverable =
  | { kind: 'json'; status: number; body: unknown }
  | { kind: 'stream'; events: AsyncIterable<string> };

/** Sends a JSON answer with the pipeline's headers. */
export function sendJson(reply: FastifyReply, answer: { status: number; body: unknown }, headers: Record<string, string>): void {
  void reply.status(answer.status).headers(headers).send(answer.body);
}

/**
 * Relays a stream to the client event by event as it arrives (no buffering). A failure after the first
 * byte ends the stream with an SSE error event then `[DONE]`, never with a silent close.
 */
export async function relayStream(
  reply: FastifyReply,
  events: AsyncIterable<string>,
  headers: Record<string, string>,
  signal: AbortSignal,
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
  try {
    for await (const data of events) {
      if (!res.write(sseEvent(data))) await once(res, 'drain', { signal });
    }
    res.write(sseEvent(SSE_DONE));
  } catch (error) {
    const reason = signal.aborted ? signal.reason : error;
    if (!(reason instanceof CancelledError) && !res.destroyed) {
      res.write(sseEvent(JSON.stringify(toErrorResponse(reason).body)));
      res.write(sseEvent(SSE_DONE));
    }
  } finally {
    if (!res.writableEnded) res.end();
  }
}
