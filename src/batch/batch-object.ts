import type { InferencePath } from '../upstream/upstream.types';

export type BatchStatus = 'validating' | 'failed' | 'in_progress' | 'finalizing' | 'completed' | 'expired' | 'cancelling' | 'cancelled';

export const BATCH_STATUSES: BatchStatus[] = ['validating', 'failed', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling', 'cancelled'];

/** The endpoints a batch may run, and the upstream path of each. */
export const BATCH_ENDPOINTS: Record<string, InferencePath> = {
  '/v1/chat/completions': '/chat/completions',
  '/v1/embeddings': '/embeddings',
  '/v1/responses': '/responses',
};

/** OpenAI's batch object. */
export interface BatchObject {
  id: string;
  object: 'batch';
  endpoint: string;
  errors: null;
  input_file_id: string;
  completion_window: '24h';
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  metadata: Record<string, string> | null;
}

/** The fields of a batch's Redis hash, as read back. */
export type BatchHash = Record<string, string>;

const seconds = (value: string | undefined) => (value === undefined || value === '' ? null : Number(value));

/** The batch object of a stored batch. */
export function batchObject(id: string, h: BatchHash): BatchObject {
  return {
    id,
    object: 'batch',
    endpoint: h.endpoint,
    errors: null,
    input_file_id: h.input_file_id,
    completion_window: '24h',
    status: h.status as BatchStatus,
    output_file_id: h.output_file_id ?? null,
    error_file_id: h.error_file_id ?? null,
    created_at: Number(h.created_at),
    in_progress_at: seconds(h.in_progress_at),
    expires_at: Math.floor(Number(h.expires_at_ms) / 1000),
    finalizing_at: seconds(h.finalizing_at),
    completed_at: seconds(h.completed_at),
    failed_at: null,
    expired_at: seconds(h.expired_at),
    cancelling_at: seconds(h.cancelling_at),
    cancelled_at: seconds(h.cancelled_at),
    request_counts: { total: Number(h.total), completed: Number(h.completed ?? 0), failed: Number(h.failed ?? 0) },
    metadata: h.metadata ? (JSON.parse(h.metadata) as Record<string, string>) : null,
  };
}
