import type { JobTokens } from '../auth/token-usage.service';
import type { Priority } from '../common/priority';
import type { InferencePath } from '../upstream/upstream.types';

export const INFERENCE_QUEUE = 'inference';

/** Priority bands, in the order they run. */
export const BAND: Record<Priority, number> = { high: 1, normal: 2, low: 3 };

/**
 * BullMQ priority numbers each band spans (BullMQ allows 1 to 2^21; lower runs first, FIFO within one
 * number). Within a band, a job's number is the band's base plus its fair-share start tag, so the
 * order within a priority interleaves client keys by weight (start-time fair queuing).
 */
export const FAIR_RANGE = 699_050;

/** The BullMQ priority of a job of `priority` whose fair-share start tag is `tag`. */
export function bullPriority(priority: Priority, tag: number): number {
  return (BAND[priority] - 1) * FAIR_RANGE + 1 + Math.min(Math.max(0, Math.floor(tag)), FAIR_RANGE - 1);
}

/** The fair-share start tag carried by a BullMQ priority number. */
export function fairTagOf(bullPriorityNumber: number): number {
  return (bullPriorityNumber - 1) % FAIR_RANGE;
}

/** What a queued request carries: enough for any instance's worker to run it. */
export interface InferenceJobData {
  requestId: string;
  /** Non-secret id of the caller's key; the jobs API shows a job only to it. */
  clientId: string;
  priority: Priority;
  path: InferencePath;
  model: string;
  body: Record<string, unknown>;
  stream: boolean;
  /** The request's `X-Session-Id`: prefix-aware routing's affinity key when the body has none. */
  affinityKey?: string;
  enqueuedAt: number;
  deadlineAt: number;
  /**
   * `sync`: an HTTP handler waits for the answer; `async`: the jobs API stores it; `background`: a
   * background response (`POST /v1/responses` with `background: true`), whose id is the job's and whose
   * record and event log the worker writes (responses/).
   */
  mode: 'sync' | 'async' | 'background';
  /** Instance whose handler waits (sync): where the worker delivers. */
  origin: string;
  /** Retries allowed by the strategy when the job was admitted. */
  retriesAllowed: boolean;
  /** The client key's cap on running requests (API_KEYS_FILE `maxConcurrent`), if it has one. */
  keyMaxConcurrent?: number;
  /** Admission's estimate of its upstream time (size-aware), when the model was learned. */
  expectedServiceMs?: number;
  /** W3C trace context of the request that queued the job (tracing on): the worker, on any instance, continues its trace. */
  traceparent?: string;
  /** Jobs and background responses: the token accounting that the worker finishing the job does. */
  tokens?: JobTokens;
}

/** What a finished job stores (its BullMQ return value). */
export type InferenceJobResult =
  /** `attempts`: upstream calls made, retries and fallbacks included. */
  | { outcome: 'succeeded'; status: number; body?: unknown; upstream: string; model: string; queueWaitMs: number; durationMs: number; attempts: number }
  | { outcome: 'cancelled'; queueWaitMs: number; attempts: number }
  | { outcome: 'expired'; queueWaitMs: number }
  /** Never run: its add was refused to its caller, or its sync caller's instance is gone. */
  | { outcome: 'dropped'; queueWaitMs: number }
  /** A sync request that failed: its caller got the error; nothing for the dead-letter list. */
  | { outcome: 'failed'; queueWaitMs: number; attempts: number; error: { message: string; type: string; code: string | null } };
