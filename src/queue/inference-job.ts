import type { Priority } from '../adaptive/graduated-rejection';
import type { InferencePath } from '../upstream/upstream.types';

export const INFERENCE_QUEUE = 'inference';

/** BullMQ priorities: lower runs first; FIFO within one priority. */
export const BULL_PRIORITY: Record<Priority, number> = { high: 1, normal: 2, low: 3 };

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
  enqueuedAt: number;
  deadlineAt: number;
  /** `sync`: an HTTP handler waits for the answer; `async`: the jobs API stores it. */
  mode: 'sync' | 'async';
  /** Instance whose handler waits (sync): where the worker delivers. */
  origin: string;
  /** Retries allowed by the strategy when the job was admitted. */
  retriesAllowed: boolean;
  /** W3C trace context of the request that queued the job (tracing on): the worker, on any instance, continues its trace. */
  traceparent?: string;
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
