import { Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AdaptiveService } from '../adaptive/adaptive.service';
import { CancelledError, InvalidRequestError } from '../common/errors';
import type { RequestContext } from '../common/request-context';
import type { Admission } from '../queue/admission';
import { JobsService } from '../queue/jobs.service';
import { QueueService } from '../queue/queue.service';
import type { InferencePath } from '../upstream/upstream.types';
import { endSseWithError, relayStream, sendJson, writeQueueStatus } from './answer-writer';

/** Routes whose requests `Prefer: respond-async` turns into jobs (their answer is stored, never streamed). */
const ASYNC_PATHS: ReadonlySet<InferencePath> = new Set(['/chat/completions', '/responses']);

/**
 * Takes an admitted, validated OpenAI request from a controller to its answer on the wire: shapes it
 * for the current strategy, puts it through the queue, and writes the JSON or relays the stream. An
 * async request (jobs API, `Prefer: respond-async`) is answered 202 with its job at once.
 */
@Injectable()
export class InferenceService {
  constructor(
    private readonly queue: QueueService,
    private readonly jobs: JobsService,
    private readonly adaptive: AdaptiveService,
  ) {}

  async serve(path: InferencePath, body: Record<string, unknown>, admission: Admission | undefined, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const context = request.bulwark as RequestContext;
    try {
      if (!admission) throw new Error('an inference route was reached without an admission decision');
      const shaped = path === '/embeddings' ? body : this.adaptive.shapeBody(body, path === '/responses' ? 'responses' : 'chat');
      const queued = {
        admission,
        payload: { path, model: String(shaped.model), body: shaped, stream: path !== '/embeddings' && shaped.stream === true },
        requestId: context.requestId,
      };
      if (context.mode === 'async' && ASYNC_PATHS.has(path)) {
        const submitted = await this.queue.submit(queued, idempotencyKey(request));
        const view = submitted.job ? await this.jobs.submitted(submitted.job) : await this.jobs.get(submitted.id, admission.client.id);
        if (submitted.replayed) void reply.header('idempotent-replayed', 'true');
        void reply.status(202).header('location', `/v1/jobs/${view.id}`).header('x-queue-wait-ms', '0').send(view);
        return;
      }
      // `X-Queue-Status: comments` on a stream: while it waits, the client hears where it stands.
      const stream = queued.payload.stream;
      const statusComments = stream && headerValue(request, 'x-queue-status')?.trim().toLowerCase() === 'comments';
      const relay = { namedEvents: path === '/responses' };
      let running;
      try {
        running = await this.queue.run(statusComments ? { ...queued, onWaiting: (status) => writeQueueStatus(reply, status) } : queued, context.signal);
      } catch (error) {
        // The stream is open already (status comments went out): the failure is its SSE error event.
        if (!reply.raw.headersSent) throw error;
        if (!(error instanceof CancelledError)) endSseWithError(reply, error, relay);
        return;
      }
      try {
        const headers = {
          'x-upstream': running.answer.upstream,
          'x-queue-wait-ms': String(Math.round(running.queueWaitMs)),
          ...modelHeaders(queued.payload.model, running.answer.model),
        };
        if (running.answer.kind === 'json') sendJson(reply, running.answer, headers);
        else await relayStream(reply, running.answer.events, headers, context.signal, relay);
      } finally {
        running.release();
      }
    } finally {
      context.finish();
    }
  }
}

function headerValue(request: FastifyRequest, name: string): string | undefined {
  const raw = request.headers[name];
  return Array.isArray(raw) ? raw[0] : raw;
}

/** The `Idempotency-Key` header (API.md §2): any string of 1 to 128 characters. */
function idempotencyKey(request: FastifyRequest): string | undefined {
  const value = headerValue(request, 'idempotency-key');
  if (value === undefined || value === '') return undefined;
  if (value.length > 128) throw new InvalidRequestError('invalid_header', 'Idempotency-Key must be at most 128 characters', 'Idempotency-Key');
  return value;
}

/** Visible ASCII and spaces: what a header value can carry as is (a model name sent by a client may not be). */
const HEADER_SAFE = /^[\x20-\x7e]{1,256}$/;

/**
 * `X-Model`: the model that answered; `X-Fallback-From`: the model asked for, when a fallback answered.
 * A name that cannot travel in a header is left out rather than failing the answer.
 */
export function modelHeaders(asked: string, answered: string): Record<string, string> {
  const headers: Record<string, string> = {};
  if (HEADER_SAFE.test(answered)) headers['x-model'] = answered;
  if (answered !== asked && HEADER_SAFE.test(asked)) headers['x-fallback-from'] = asked;
  return headers;
}
