import { Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AdaptiveService } from '../adaptive/adaptive.service';
import { AdmissionService } from '../adaptive/admission.service';
import { effectivePriority, RequestContext } from '../common/request-context';
import { JobsService } from '../queue/jobs.service';
import { QueueService } from '../queue/queue.service';
import type { InferencePath } from '../upstream/upstream.types';
import { relayStream, sendJson } from './answer-writer';

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
    private readonly admission: AdmissionService,
  ) {}

  async serve(path: InferencePath, body: Record<string, unknown>, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const context = request.bulwark as RequestContext;
    try {
      const shaped = path === '/embeddings' ? body : this.adaptive.shapeBody(body);
      const queued = {
        payload: { path, model: String(shaped.model), body: shaped, stream: path !== '/embeddings' && shaped.stream === true },
        requestId: context.requestId,
        clientId: context.client.id,
        priority: effectivePriority(context),
        deadlineAt: context.deadlineAt,
        retriesAllowed: this.adaptive.effects().retriesAllowed,
        onAccepted: () => this.admission.recordAdmitted(effectivePriority(context)),
      };
      if (context.mode === 'async' && path === '/chat/completions') {
        const job = await this.queue.submit(queued);
        const view = await this.jobs.view(job);
        void reply.status(202).header('location', `/v1/jobs/${view.id}`).header('x-queue-wait-ms', '0').send(view);
        return;
      }
      const running = await this.queue.run(queued, context.signal);
      try {
        const headers = { 'x-upstream': running.answer.upstream, 'x-queue-wait-ms': String(Math.round(running.queueWaitMs)) };
        if (running.answer.kind === 'json') sendJson(reply, running.answer, headers);
        else await relayStream(reply, running.answer.events, headers, context.signal);
      } finally {
        running.release();
      }
    } finally {
      context.finish();
    }
  }
}
