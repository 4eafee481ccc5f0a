import { Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RequestContext } from '../common/request-context';
import { UpstreamDispatcher } from '../dispatch/upstream-dispatcher';
import type { InferencePath } from '../upstream/upstream.types';
import { relayStream, sendJson } from './answer-writer';

/**
 * Takes a validated OpenAI request from a controller to an answer on the wire: dispatches it under
 * the request's deadline and writes the JSON or the relayed stream.
 */
@Injectable()
export class InferenceService {
  constructor(private readonly dispatcher: UpstreamDispatcher) {}

  async serve(path: InferencePath, body: Record<string, unknown>, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const context = request.bulwark as RequestContext;
    try {
      const stream = path !== '/embeddings' && body.stream === true;
      const answer = await this.dispatcher.dispatch(
        { path, model: String(body.model), body, stream },
        { signal: context.signal, deadlineAt: context.deadlineAt, retriesAllowed: true },
      );
      const headers = { 'x-upstream': answer.upstream, 'x-queue-wait-ms': '0' };
      if (answer.kind === 'json') {
        sendJson(reply, answer, headers);
        return;
      }
      const events = (async function* () {
        yield* answer.first;
        yield* answer.rest;
      })();
      await relayStream(reply, events, headers, context.signal);
    } finally {
      context.finish();
    }
  }
}
