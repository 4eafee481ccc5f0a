import { randomUUID } from 'node:crypto';
import { AnswerUsage, usageOfBody } from '../auth/answer-usage';
import { toErrorResponse } from '../common/error-response';
import { CancelledError, UpstreamBadResponseError } from '../common/errors';
import { asOurs, cancelledEvent, failedResponse, finalStatusOf, LAST_EVENT_TYPES, ResponseError, withStatus } from '../responses/response-object';
import { FinalStatus, isFinal, ResponseStore } from '../responses/response-store';
import type { ServedAnswer } from '../upstream/upstream.types';

type Json = Record<string, unknown>;
type Event = Json & { type: string };

/** Why a re-run does not continue a stream: its events so far came from an upstream call that is gone. */
export const RERUN_AFTER_OUTPUT: ResponseError = {
  code: 'server_error',
  message: 'The instance running this response stopped after part of its output was streamed; a new run cannot continue that output. Create the response again.',
};

/**
 * One worker run of a background response: writes what the upstream answers into the response's record
 * and (streamed ones) its event log, under a run token that fences out any other run. The upstream's
 * own `response.created` is dropped (the gateway logged its own at creation, status `queued`); every
 * other event gets this response's id and the next sequence number from Redis.
 *
 * A re-run (the instance of the first run died; BullMQ runs the job once more) continues the log when
 * the first run had logged no output yet; after output, it ends the response `failed` with a
 * `response.failed` event after the last logged one, since a second upstream call would not continue the
 * first one's text.
 */
export class BackgroundRun {
  private readonly token = randomUUID();
  private stage = 0;
  /** The usage of the final response object, once this run has ended the response with one that reports it. */
  usage?: AnswerUsage;

  private constructor(
    private readonly store: ResponseStore,
    readonly id: string,
    private readonly ours: Json,
    private readonly streamed: boolean,
  ) {}

  /**
   * Starts a run of response `id` that may last `keepMs`; undefined when there is nothing to run (it has
   * ended, or was ended here as above).
   */
  static async start(store: ResponseStore, id: string, keepMs: number): Promise<BackgroundRun | undefined> {
    const stored = await store.get(id);
    if (!stored || isFinal(stored.status)) return undefined;
    const run = new BackgroundRun(store, id, stored.object, stored.stream);
    const { before, stage } = await store.start(id, run.token, keepMs);
    if (before !== 'queued' && before !== 'in_progress') return undefined;
    run.stage = stage;
    if (before === 'in_progress' && stored.stream && stage >= 2) {
      await run.fail(RERUN_AFTER_OUTPUT);
      return undefined;
    }
    return run;
  }

  /**
   * Records a served answer to its end: a JSON answer becomes the final object; a stream's events go to
   * the log as they arrive, and its last one ends the response. Throws when the stream breaks, and a
   * CancelledError once this run may no longer write (cancelled, or another run owns the response).
   */
  async record(answer: ServedAnswer): Promise<void> {
    if (answer.kind === 'json') {
      const object = asOurs(answer.body, this.ours);
      await this.end(finalStatusOf(object), object);
      return;
    }
    for (const data of answer.first) if (await this.take(data)) return;
    for await (const data of answer.rest) if (await this.take(data)) return;
    throw new UpstreamBadResponseError('The upstream stream ended before its response.completed event');
  }

  /** Ends the response failed with `error` (a `response.failed` event for streamed ones). */
  async fail(error: unknown): Promise<void> {
    const object = failedResponse(this.ours, isResponseError(error) ? error : responseErrorOf(error));
    await this.store.finish(this.id, this.token, 'failed', object, { type: 'response.failed', response: object });
  }

  /** Ends the response cancelled, unless it has ended already. */
  async cancelled(): Promise<void> {
    await this.store.finish(this.id, this.token, 'cancelled', withStatus(this.ours, 'cancelled'), cancelledEvent());
  }

  /** One upstream event; true once it ended the response. */
  private async take(data: string): Promise<boolean> {
    const event = parseEvent(data);
    if (!event) return false;
    const { sequence_number: _upstreamSequence, ...rest } = event;
    const type = rest.type;
    if (type === 'response.created' || type === 'response.queued') return false;
    if (type === 'response.in_progress' && this.stage >= 1) return false;
    if ('response' in rest) rest.response = asOurs(rest.response, this.ours);
    if (type === 'error') {
      await this.fail({ code: typeof rest.code === 'string' ? rest.code : 'server_error', message: String(rest.message ?? 'The upstream failed mid-stream') });
      return true;
    }
    if (LAST_EVENT_TYPES.has(type)) {
      const object = rest.response as Json;
      await this.end(finalStatusOf(object), object, rest);
      return true;
    }
    const stage = type === 'response.in_progress' ? 1 : 2;
    if (this.streamed && (await this.store.append(this.id, this.token, rest, stage)) === undefined) throw new CancelledError('job_cancel');
    this.stage = Math.max(this.stage, stage);
    return false;
  }

  private async end(status: FinalStatus, object: Json, lastEvent?: Event): Promise<void> {
    const outcome = await this.store.finish(this.id, this.token, status, { ...object, status }, lastEvent);
    if (outcome !== 'ok') throw new CancelledError('job_cancel');
    this.usage = usageOfBody(object);
  }
}

function parseEvent(data: string): Event | undefined {
  try {
    const event = JSON.parse(data) as unknown;
    if (event && typeof event === 'object' && typeof (event as Json).type === 'string') return event as Event;
  } catch {
    // The upstream client checks every event; one that still does not parse is skipped.
  }
  return undefined;
}

function isResponseError(error: unknown): error is ResponseError {
  return !!error && typeof error === 'object' && !(error instanceof Error) && 'code' in error && 'message' in error;
}

/** The `error` of a failed response object for a gateway error: its contract code and message. */
export function responseErrorOf(error: unknown): ResponseError {
  const { code, type, message } = toErrorResponse(error).body.error;
  return { code: code ?? type, message };
}
