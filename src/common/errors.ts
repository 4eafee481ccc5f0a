/**
 * Bulwark's typed domain errors. Services throw these; the one exception filter
 * (`common/openai-exception.filter.ts`) turns each into the contract's status, headers and body.
 * Nothing here knows about HTTP beyond the stable error code.
 */
export type ErrorCode =
  | 'invalid_json'
  | 'invalid_body'
  | 'invalid_header'
  | 'unsupported_media_type'
  | 'invalid_api_key'
  | 'admin_only'
  | 'model_not_found'
  | 'job_not_found'
  | 'response_not_found'
  | 'file_not_found'
  | 'batch_not_found'
  | 'route_not_found'
  | 'breaker_not_found'
  | 'body_too_large'
  | 'rate_limited'
  | 'tokens_rate_limited'
  | 'tokens_exceed_limit'
  | 'tier_not_allowed'
  | 'resource_unavailable'
  | 'key_queue_share_exceeded'
  | 'queue_full'
  | 'load_shed'
  | 'deadline_unreachable'
  | 'shutting_down'
  | 'circuit_open'
  | 'upstream_error'
  | 'upstream_bad_response'
  | 'upstream_rate_limited'
  | 'queue_timeout'
  | 'request_timeout'
  | 'job_not_cancellable'
  | 'batch_not_cancellable'
  | 'internal_error';

export interface BulwarkErrorOptions {
  /** When the caller may try again; becomes `Retry-After` (whole seconds, rounded up). */
  retryAfterMs?: number;
  /** The offending request field or header, as OpenAI's `param`. */
  param?: string;
  cause?: unknown;
}

export class BulwarkError extends Error {
  readonly retryAfterMs?: number;
  readonly param?: string;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options: BulwarkErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retryAfterMs = options.retryAfterMs;
    this.param = options.param;
  }
}

export class InvalidRequestError extends BulwarkError {
  constructor(code: 'invalid_json' | 'invalid_body' | 'invalid_header' | 'unsupported_media_type', message: string, param?: string) {
    super(code, message, { param });
  }
}

export class BodyTooLargeError extends BulwarkError {
  constructor(limitBytes: number) {
    super('body_too_large', `Request body is larger than the limit of ${limitBytes} bytes`);
  }
}

export class AuthenticationError extends BulwarkError {
  constructor(message = 'Missing or unknown API key') {
    super('invalid_api_key', message);
  }
}

export class AdminOnlyError extends BulwarkError {
  constructor(message = 'This route needs the admin key') {
    super('admin_only', message);
  }
}

export class NotFoundError extends BulwarkError {
  constructor(code: 'model_not_found' | 'job_not_found' | 'response_not_found' | 'route_not_found' | 'breaker_not_found' | 'file_not_found' | 'batch_not_found', message: string, param?: string) {
    super(code, message, { param });
  }
}

export class RateLimitedError extends BulwarkError {
  constructor(limitPerMinute: number, retryAfterMs: number) {
    super('rate_limited', `Rate limit of ${limitPerMinute} requests per minute reached for this key`, { retryAfterMs });
  }
}

/** The key's token budget (API_KEYS_FILE `tokensPerMinute` / `tokensPerDay`) cannot hold this request now. */
export class TokensRateLimitedError extends BulwarkError {
  constructor(limit: number, period: 'minute' | 'day', requested: number, retryAfterMs: number) {
    super(
      'tokens_rate_limited',
      `Token limit of ${limit} tokens per ${period} reached for this key: this request reserves up to ${requested} tokens; retry after ${Math.ceil(retryAfterMs / 1000)} s`,
      { retryAfterMs },
    );
  }
}

/** The request's worst case (prompt plus output limit) is larger than the key's token limit itself: it could never run. */
export class TokensExceedLimitError extends BulwarkError {
  constructor(limit: number, period: 'minute' | 'day', requested: number, param: string) {
    super(
      'tokens_exceed_limit',
      `This request reserves up to ${requested} tokens (its prompt's estimate plus its output limit), more than this key's limit of ${limit} tokens per ${period}; reduce \`${param}\``,
      { param },
    );
  }
}

/** The key may not use the `service_tier` it asked for (API_KEYS_FILE `serviceTiers`). */
export class TierNotAllowedError extends BulwarkError {
  constructor(tier: string, allowed: readonly string[]) {
    super('tier_not_allowed', `This key may not use service_tier "${tier}"; it may use ${allowed.join(', ')}`, { param: 'service_tier' });
  }
}

/** A `flex` request found no capacity (OpenAI's answer to flex requests): retry later. */
export class ResourceUnavailableError extends BulwarkError {
  constructor(reason: string, retryAfterMs: number | undefined, cause?: unknown) {
    super('resource_unavailable', `No capacity for service_tier "flex" right now (${reason}); retry after ${Math.ceil((retryAfterMs ?? 1000) / 1000)} s`, {
      retryAfterMs,
      cause,
    });
  }
}

/** The client key already holds its share of the shared queue (API_KEYS_FILE `maxQueueShare`). */
export class KeyQueueShareExceededError extends BulwarkError {
  constructor(waiting: number, cap: number, retryAfterMs: number) {
    super('key_queue_share_exceeded', `This key already has ${waiting} of its ${cap} allowed requests waiting in the queue; retry after ${Math.ceil(retryAfterMs / 1000)} s`, { retryAfterMs });
  }
}

export class QueueFullError extends BulwarkError {
  constructor(waiting: number, max: number, retryAfterMs: number) {
    super('queue_full', `Queue is full (${waiting}/${max} waiting); retry after ${Math.ceil(retryAfterMs / 1000)} s`, { retryAfterMs });
  }
}

export class LoadShedError extends BulwarkError {
  constructor(reason: string, retryAfterMs: number) {
    super('load_shed', `Request shed to protect the upstream (${reason}); retry after ${Math.ceil(retryAfterMs / 1000)} s`, { retryAfterMs });
  }
}

export class DeadlineUnreachableError extends BulwarkError {
  constructor(estimatedWaitMs: number, remainingMs: number, retryAfterMs: number) {
    super(
      'deadline_unreachable',
      `Estimated queue wait of ${Math.round(estimatedWaitMs)} ms exceeds the request's remaining deadline of ${Math.round(remainingMs)} ms`,
      { retryAfterMs },
    );
  }
}

export class ShuttingDownError extends BulwarkError {
  constructor() {
    super('shutting_down', 'This instance is shutting down and takes no new work', { retryAfterMs: 1000 });
  }
}

export class CircuitOpenError extends BulwarkError {
  constructor(model: string, retryAfterMs: number) {
    super('circuit_open', `Every upstream that serves model ${model} is failing (circuit open) and no fallback can serve`, { retryAfterMs });
  }
}

/** The upstream failed in a way that counts against it: connection error, 5xx, 429, timeout. */
export class UpstreamError extends BulwarkError {
  constructor(
    message: string,
    readonly upstreamStatus?: number,
    options: BulwarkErrorOptions = {},
  ) {
    super('upstream_error', message, options);
  }
}

/**
 * The upstream kept answering 429 through Bulwark's retries: the caller should back off for the
 * upstream's Retry-After rather than retry at once.
 */
export class UpstreamRateLimitedError extends BulwarkError {
  constructor(message: string, retryAfterMs: number, cause?: unknown) {
    super('upstream_rate_limited', message, { retryAfterMs, cause });
  }
}

export class UpstreamBadResponseError extends BulwarkError {
  constructor(message: string, options: BulwarkErrorOptions = {}) {
    super('upstream_bad_response', message, options);
  }
}

/**
 * The upstream refused the request for a reason of the client's own (a 4xx other than 429): passed
 * through with its status and message, never counted against the upstream.
 */
export class UpstreamClientError extends BulwarkError {
  constructor(
    readonly status: number,
    readonly upstreamBody: { message: string; type?: string; param?: string | null; code?: string | null },
  ) {
    super('upstream_error', upstreamBody.message);
  }
}

export class QueueTimeoutError extends BulwarkError {
  constructor(waitedMs: number) {
    super('queue_timeout', `The request's deadline passed after ${Math.round(waitedMs)} ms in the queue; it was never sent upstream`);
  }
}

export class RequestTimeoutError extends BulwarkError {
  constructor(
    readonly timeoutMs: number,
    what = 'the upstream worked',
  ) {
    super('request_timeout', `The request's deadline of ${timeoutMs} ms passed while ${what}`);
  }
}

/** A batch that has ended (completed, failed, expired, cancelled) cannot be cancelled. */
export class BatchNotCancellableError extends BulwarkError {
  constructor(status: string) {
    super('batch_not_cancellable', `The batch is ${status} and can no longer be cancelled`);
  }
}

/** An upload or a batch past its configured size (bytes of a file, lines of a batch). */
export class PayloadTooLargeError extends BulwarkError {
  constructor(message: string, param?: string) {
    super('body_too_large', message, { param });
  }
}

export class JobNotCancellableError extends BulwarkError {
  constructor(status: string) {
    super('job_not_cancellable', `The job is ${status} and can no longer be cancelled`);
  }
}

/** The upstream did not answer in time (time to first byte, stream silence, or the deadline). Counts against it. */
export class UpstreamTimeoutError extends BulwarkError {
  constructor(message: string) {
    super('request_timeout', message);
  }
}

/** The caller went away or cancelled the job: nothing is sent back and nothing counts against the upstream. */
export class CancelledError extends BulwarkError {
  constructor(readonly by: 'client' | 'job_cancel' | 'shutdown') {
    super('internal_error', `Cancelled by ${by}`);
  }
}

/** An error that happened on another instance, carried back already shaped for the wire. */
export class RemoteError extends BulwarkError {
  constructor(readonly response: { status: number; headers: Record<string, string>; body: { error: { message: string } } }) {
    super('internal_error', response.body.error.message);
  }
}

/**
 * Builds an error without capturing a stack trace. Refusals at the door are expected control flow at
 * thousands per second under overload; a stack would cost more than the rest of the refusal.
 */
export function withoutStack<T extends Error>(build: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return build();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
