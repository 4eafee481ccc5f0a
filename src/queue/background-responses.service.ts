import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { NEVER_RAN, TokenUsageService } from '../auth/token-usage.service';
import { CancellationService } from '../cancellation/cancellation.service';
import { Clock } from '../common/clock';
import { settleWithin, withDeadline } from '../common/deadline';
import { InvalidRequestError, LoadShedError, NotFoundError } from '../common/errors';
import { ResponseEventTail } from '../responses/response-event-tail';
import { cancelledEvent, failedResponse, LAST_EVENT_TYPES, newResponseId, queuedResponse, withStatus } from '../responses/response-object';
import { isFinal, ResponseStore, StoredResponse } from '../responses/response-store';
import { INFERENCE_QUEUE, InferenceJobData, InferenceJobResult } from './inference-job';
import { QueuedRequest, QueueService } from './queue.service';
import { SlotService } from './slot.service';

type Json = Record<string, unknown>;

/** A response not final whose job is nowhere after this long was never queued (its add failed after the record was made). */
const ORPHAN_MS = 60_000;
/** Events read per round trip. */
const EVENTS_PER_READ = 500;
/** Longest a streaming reader waits without news before it looks at the response's state again. */
const RECHECK_MS = 1000;
/** Longest wait for BullMQ's view of a response's job. */
const JOB_LOOKUP_MS = 2000;

/**
 * Background responses (OpenAI's `background: true`) on the durable queue: create (a job whose id is
 * the response's), retrieve, cancel, and the reading of a streamed one's events from any instance. The
 * record in Redis (responses/) is the truth about a response; the job is only how it runs.
 */
@Injectable()
export class BackgroundResponses {
  constructor(
    @InjectQueue(INFERENCE_QUEUE) private readonly queue: Queue<InferenceJobData, InferenceJobResult>,
    private readonly queueService: QueueService,
    private readonly store: ResponseStore,
    private readonly tail: ResponseEventTail,
    private readonly cancellation: CancellationService,
    private readonly slots: SlotService,
    private readonly clock: Clock,
    private readonly tokens: TokenUsageService,
  ) {}

  /** Stores and queues a background response; answers its object (`queued`). `stream`: its events are logged. */
  async create(asked: QueuedRequest): Promise<Json> {
    // The upstream runs it in the foreground: the gateway is what holds it in the background.
    const { background: _background, ...body } = asked.payload.body;
    const request = { ...asked, payload: { ...asked.payload, body } };
    const id = newResponseId();
    const object = queuedResponse(id, request.payload.body, this.clock.now());
    const created = request.payload.stream ? { type: 'response.created', response: object } : undefined;
    await reachable(this.store.create(id, request.admission.client.id, object, created, request.admission.deadlineAt - this.clock.now()));
    try {
      await this.queueService.submit(request, undefined, { id });
    } catch (error) {
      await this.store.discard(id).catch(() => undefined);
      throw error;
    }
    return object;
  }

  /** Response `id` of `clientId`'s as it stands; another key's is not found. */
  async get(id: string, clientId: string): Promise<Json> {
    const stored = await this.reconcile(id, await this.owned(id, clientId));
    return withStatus(stored.object, stored.status);
  }

  /**
   * Cancels response `id` wherever it is: removed from the queue, or its upstream call aborted where it
   * runs. A response that has ended is answered as it is (cancelling is idempotent, as OpenAI's is).
   */
  async cancel(id: string, clientId: string): Promise<Json> {
    const stored = await this.owned(id, clientId);
    if (!isFinal(stored.status)) {
      const outcome = await reachable(this.store.finish(id, '*', 'cancelled', withStatus(stored.object, 'cancelled'), cancelledEvent()));
      if (outcome === 'ok') await this.stop(id);
    }
    return this.get(id, clientId);
  }

  /**
   * The events of streamed response `id` after sequence number `after` (-1: all), then live ones until
   * its last; checked before anything is sent, so a refusal is a plain error answer.
   */
  async events(id: string, clientId: string, after: number, signal: AbortSignal): Promise<AsyncIterable<string>> {
    const stored = await this.owned(id, clientId);
    if (!stored.stream) {
      throw new InvalidRequestError('invalid_body', 'This response was not created with stream: true; only a streamed background response can be streamed', 'stream');
    }
    const first = await reachable(this.store.eventsAfter(id, after, EVENTS_PER_READ));
    this.checkKept(first.oldestKept, after);
    return this.follow(id, after, first.events, signal);
  }

  private async *follow(id: string, after: number, firstEvents: { sequence: number; type: string; data: string }[], signal: AbortSignal): AsyncIterable<string> {
    let cursor = after;
    let batch = firstEvents;
    let lastLook = false;
    let reconciledAt = this.clock.now();
    while (!signal.aborted) {
      for (const event of batch) {
        yield event.data;
        cursor = event.sequence;
        if (LAST_EVENT_TYPES.has(event.type)) return;
      }
      if (batch.length === 0) {
        // Its last event and its final status are written together: final and nothing more to read is the end.
        if (lastLook) return;
        let stored = await this.store.get(id);
        if (!stored) throw new NotFoundError('response_not_found', `Response ${id} expired while it was read`, 'response_id');
        if (!isFinal(stored.status) && this.clock.now() - reconciledAt >= RECHECK_MS) {
          reconciledAt = this.clock.now();
          stored = await this.reconcile(id, stored);
        }
        if (isFinal(stored.status)) lastLook = true;
        else await this.tail.wait(id, cursor, RECHECK_MS, signal);
      }
      const next = await this.store.eventsAfter(id, cursor, EVENTS_PER_READ);
      this.checkKept(next.oldestKept, cursor);
      batch = next.events;
    }
  }

  /** Refuses a read that starts before the oldest event still kept (the log is bounded). */
  private checkKept(oldestKept: number | undefined, after: number): void {
    if (oldestKept !== undefined && oldestKept > after + 1) {
      throw new InvalidRequestError(
        'invalid_body',
        `Events up to sequence_number ${oldestKept - 1} of this response are no longer kept (RESPONSE_EVENTS_MAX, RESPONSE_EVENTS_MAX_BYTES); resume with starting_after=${oldestKept - 1} or later`,
        'starting_after',
      );
    }
  }

  private async owned(id: string, clientId: string): Promise<StoredResponse> {
    const stored = id.startsWith('resp_') ? await reachable(this.store.get(id)) : undefined;
    if (!stored || stored.owner !== clientId) throw new NotFoundError('response_not_found', `No response ${id.slice(0, 128)}`, 'response_id');
    return stored;
  }

  /** Takes a cancelled response off the queue, or aborts its upstream call where it runs. */
  private async stop(id: string): Promise<void> {
    const job = await settleWithin(this.queue.getJob(id), JOB_LOOKUP_MS, undefined);
    const removed = job ? await settleWithin(job.remove().then(() => true), JOB_LOOKUP_MS, false) : false;
    if (removed) {
      await this.slots.forget(id).catch(() => undefined);
      if (job?.data.tokens) this.tokens.endJob(job.data.clientId, job.data.tokens, job.data.model, NEVER_RAN);
    } else {
      await this.cancellation.cancel(id);
    }
  }

  /**
   * A response that is not final although its job has ended (its worker could not write the end) or is
   * gone (BullMQ gave up on it after its re-run stalled too, or it was never queued) ends failed now.
   */
  private async reconcile(id: string, stored: StoredResponse): Promise<StoredResponse> {
    if (isFinal(stored.status)) return stored;
    // No answer from BullMQ in time: the response stands as stored for now.
    const looked = await withDeadline(
      this.queue.getJob(id).then(async (job) => ({ job, state: job ? await job.getState() : 'unknown' })),
      JOB_LOOKUP_MS,
    ).catch(() => undefined);
    if (!looked) return stored;
    const { job, state } = looked;
    const ageMs = this.clock.now() - Number(stored.object.created_at) * 1000;
    const ended = state === 'failed' || state === 'completed' || (state === 'unknown' && ageMs > ORPHAN_MS);
    if (!ended) return stored;
    const reason = state === 'failed' && job?.failedReason ? `: ${job.failedReason}` : '';
    const object = failedResponse(stored.object, { code: 'server_error', message: `The response stopped before it ended${reason}` });
    await this.store.finish(id, '*', 'failed', object, { type: 'response.failed', response: object });
    return (await this.store.get(id)) ?? stored;
  }
}

/** A store call whose failure (Redis away) is the contract's 503, as for any work while the queue store is unreachable. */
function reachable<T>(call: Promise<T>): Promise<T> {
  return call.catch(() => {
    throw new LoadShedError('the queue store (Redis) did not answer', 5000);
  });
}
