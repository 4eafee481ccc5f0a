import { Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AdaptiveService } from '../adaptive/adaptive.service';
import { CancelledError, InvalidRequestError } from '../common/errors';
import { TokenUsageService } from '../auth/token-usage.service';
import type { RequestContext } from '../common/request-context';
import { refusalForTier } from '../common/service-tier';
import type { Admission } from '../queue/admission';
import { BackgroundResponses } from '../queue/background-responses.service';
import { JobsService } from '../queue/jobs.service';
import { QueuedRequest, QueueService } from '../queue/queue.service';
import type { InferencePath } from '../upstream/upstream.types';
import { AnswerAccount } from './answer-account';
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
    private readonly background: BackgroundResponses,
    private readonly adaptive: AdaptiveService,
    private readonly tokens: TokenUsageService,
  ) {}

  async serve(path: InferencePath, body: Record<string, unknown>, admission: Admission | undefined, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const context = request.bulwark as RequestContext;
    const account = new AnswerAccount(context, this.tokens, path, String(body.model));
    try {
      if (!admission) throw new Error('an inference route was reached without an admission decision');
      const shaped = path === '/embeddings' ? body : this.adaptive.shapeBody(body, path === '/responses' ? 'responses' : 'chat');
      const queued: QueuedRequest = {
        admission,
        payload: { path, model: String(shaped.model), body: shaped, stream: path !== '/embeddings' && shaped.stream === true, affinityKey: sessionId(request) },
        requestId: context.requestId,
      };
      if (path === '/responses' && shaped.background === true) {
        // Like a job's, a background response's usage is accounted for by the worker that runs it.
        await this.serveBackground({ ...queued, tokens: account.forJob() }, context, reply, () => account.handOver());
        return;
      }
      if (context.mode === 'async' && ASYNC_PATHS.has(path)) {
        const submitted = await this.queue.submit({ ...queued, tokens: account.forJob() }, idempotencyKey(request));
        const view = submitted.job ? await this.jobs.submitted(submitted.job) : await this.jobs.get(submitted.id, admission.client.id);
        // A replay queued nothing: its own reservation is given back when this request ends.
        if (submitted.replayed) void reply.header('idempotent-replayed', 'true');
        else account.handOver();
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
        account.failed(error);
        if (!(error instanceof CancelledError)) endSseWithError(reply, refusalForTier(error, context.serviceTier), relay);
        return;
      }
      try {
        const headers = {
          'x-upstream': running.answer.upstream,
          ...(running.answer.hedged ? { 'x-hedged': 'true' } : {}),
          'x-queue-wait-ms': String(Math.round(running.queueWaitMs)),
          ...modelHeaders(queued.payload.model, running.answer.model),
        };
        if (running.answer.kind === 'json') sendJson(reply, account.answer(running.answer), headers);
        else await relayStream(reply, account.stream(running.answer), headers, context.signal, relay);
      } finally {
        running.release();
      }
    } catch (error) {
      account.failed(error);
      throw error;
    } finally {
      account.end();
      context.finish();
    }
  }

  /**
   * A background response (`background: true`): answered at once with its object, `queued`; with
   * `stream: true`, with its events instead, live until its end (a dropped reader resumes through
   * GET /v1/responses/{id}?stream=true&starting_after=N on any instance; the response runs on regardless).
   */
  private async serveBackground(queued: QueuedRequest, context: RequestContext, reply: FastifyReply, queuedNow: () => void): Promise<void> {
    const object = await this.background.create(queued);
    queuedNow();
    if (!queued.payload.stream) {
      void reply.status(200).send(object);
      return;
    }
    const events = await this.background.events(String(object.id), context.client.id, -1, context.signal);
    await relayStream(reply, events, {}, context.signal, { namedEvents: true, logged: true });
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

/** The `X-Session-Id` header (API.md §2): any string of 1 to 128 characters, prefix-aware routing's affinity key. */
function sessionId(request: FastifyRequest): string | undefined {
  const value = headerValue(request, 'x-session-id');
  if (value === undefined || value === '') return undefined;
  if (value.length > 128) throw new InvalidRequestError('invalid_header', 'X-Session-Id must be at most 128 characters', 'X-Session-Id');
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
