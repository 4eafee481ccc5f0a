import { randomBytes } from 'node:crypto';
import type { FinalStatus, ResponseStatus } from './response-store';

type Json = Record<string, unknown>;

/** The `error` of a failed response object (OpenAI: `{code, message}`). */
export interface ResponseError {
  code: string;
  message: string;
}

/** A new response id, as OpenAI's look: `resp_` and 48 hex digits. */
export function newResponseId(): string {
  return `resp_${randomBytes(24).toString('hex')}`;
}

/** The response object of a background response just queued, from its request body (OpenAI's fields and defaults). */
export function queuedResponse(id: string, body: Json, createdAtMs: number): Json {
  return {
    id,
    object: 'response',
    created_at: Math.floor(createdAtMs / 1000),
    status: 'queued',
    background: true,
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: body.model,
    output: [],
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: body.reasoning ?? { effort: null, summary: null },
    service_tier: body.service_tier ?? 'auto',
    store: body.store ?? true,
    temperature: body.temperature ?? 1,
    text: body.text ?? { format: { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_p: body.top_p ?? 1,
    truncation: body.truncation ?? 'disabled',
    usage: null,
    user: body.user ?? null,
    metadata: body.metadata ?? {},
  };
}

/** `object` as the client sees it now: with `status` (and the `error` of a failed one). */
export function withStatus(object: Json, status: ResponseStatus): Json {
  return { ...object, status };
}

/**
 * The upstream's response object (a final one, or one inside an event) as this response's: its id,
 * `background: true` and creation time are the gateway's.
 */
export function asOurs(upstream: unknown, ours: Json): Json {
  const object = upstream && typeof upstream === 'object' && !Array.isArray(upstream) ? (upstream as Json) : {};
  return { ...ours, ...object, id: ours.id, object: 'response', background: true, created_at: ours.created_at };
}

/** The final status an upstream's finished response object states. */
export function finalStatusOf(object: Json): FinalStatus {
  const status = object.status;
  return status === 'incomplete' || status === 'failed' || status === 'cancelled' ? status : 'completed';
}

/** The response object of a response that failed with `error`. */
export function failedResponse(ours: Json, error: ResponseError): Json {
  return { ...ours, status: 'failed', error };
}

/** Stream events that end a response's log: after one, a reader has everything. */
export const LAST_EVENT_TYPES: ReadonlySet<string> = new Set(['response.completed', 'response.incomplete', 'response.failed', 'error']);

/** The last event of a cancelled response's log: the Responses API's `error` event (it has no cancelled event). */
export function cancelledEvent(): Json & { type: string } {
  return { type: 'error', code: 'response_cancelled', message: 'The response was cancelled', param: null };
}
