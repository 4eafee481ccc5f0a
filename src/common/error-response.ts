import { HttpException } from '@nestjs/common';
import { BulwarkError, ErrorCode, RemoteError, UpstreamClientError } from './errors';

export interface OpenAIErrorBody {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string | null;
    suggestions: string[];
  };
}

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: OpenAIErrorBody;
}

interface CodeMapping {
  status: number;
  type: string;
  shouldRetry: boolean;
  suggestions: string[];
}

const RETRY_LATER = 'Retry after the Retry-After delay';

/** API.md §4: one row per error code. */
const MAPPINGS: Record<ErrorCode, CodeMapping> = {
  invalid_json: { status: 400, type: 'invalid_request_error', shouldRetry: false, suggestions: ['Send a valid JSON body with Content-Type: application/json'] },
  invalid_body: { status: 400, type: 'invalid_request_error', shouldRetry: false, suggestions: ['Check the field named in `param` against the OpenAI API reference'] },
  invalid_header: { status: 400, type: 'invalid_request_error', shouldRetry: false, suggestions: ['X-Priority takes high, normal or low; X-Request-Timeout-Ms a positive integer; X-Request-Id at most 128 characters'] },
  unsupported_media_type: { status: 415, type: 'invalid_request_error', shouldRetry: false, suggestions: ['Send the body as JSON with Content-Type: application/json'] },
  invalid_api_key: { status: 401, type: 'authentication_error', shouldRetry: false, suggestions: ['Send your key as `Authorization: Bearer KEY` or `X-API-Key: KEY`'] },
  admin_only: { status: 403, type: 'permission_error', shouldRetry: false, suggestions: ['Use the admin key for /admin routes'] },
  model_not_found: { status: 404, type: 'not_found_error', shouldRetry: false, suggestions: ['List the available models with GET /v1/models'] },
  job_not_found: { status: 404, type: 'not_found_error', shouldRetry: false, suggestions: ['Check the job id; results expire after their TTL'] },
  response_not_found: { status: 404, type: 'not_found_error', shouldRetry: false, suggestions: ['Check the response id; a background response is kept for RESPONSE_TTL_MS and only its own key sees it'] },
  file_not_found: { status: 404, type: 'not_found_error', shouldRetry: false, suggestions: ['Check the file id; files are visible only to the key that uploaded them (GET /v1/files lists them)'] },
  batch_not_found: { status: 404, type: 'not_found_error', shouldRetry: false, suggestions: ['Check the batch id; batches are visible only to the key that created them (GET /v1/batches lists them)'] },
  route_not_found: { status: 404, type: 'not_found_error', shouldRetry: false, suggestions: ['Check the path: Bulwark serves the OpenAI routes under /v1'] },
  breaker_not_found: { status: 404, type: 'not_found_error', shouldRetry: false, suggestions: ['List the breakers with GET /admin/breakers; a key is upstream:model'] },
  body_too_large: { status: 413, type: 'invalid_request_error', shouldRetry: false, suggestions: ['Send a smaller body, or ask the operator to raise MAX_BODY_BYTES (FILES_MAX_BYTES for uploads, BATCH_MAX_LINES for a batch\'s lines)'] },
  rate_limited: { status: 429, type: 'rate_limit_error', shouldRetry: true, suggestions: [RETRY_LATER, 'Spread requests over the minute'] },
  tokens_rate_limited: { status: 429, type: 'rate_limit_error', shouldRetry: true, suggestions: [RETRY_LATER, 'Lower max_tokens so that each request reserves fewer tokens'] },
  tokens_exceed_limit: {
    status: 400,
    type: 'invalid_request_error',
    shouldRetry: false,
    suggestions: ["Lower the output limit (max_tokens, max_completion_tokens or max_output_tokens) or shorten the prompt: a request reserves both against the key's token limit"],
  },
  tier_not_allowed: { status: 403, type: 'permission_error', shouldRetry: false, suggestions: ['Send service_tier "default" (or leave it out), or ask the operator to allow the tier for this key'] },
  resource_unavailable: { status: 429, type: 'rate_limit_error', shouldRetry: true, suggestions: [RETRY_LATER, 'Flex requests run on spare capacity; send service_tier "default" for a place in the queue'] },
  key_queue_share_exceeded: {
    status: 429,
    type: 'rate_limit_error',
    shouldRetry: true,
    suggestions: [RETRY_LATER, 'Wait for some of this key\'s queued requests to finish before sending more'],
  },
  queue_full: { status: 503, type: 'overloaded_error', shouldRetry: true, suggestions: [RETRY_LATER, 'Send low-urgency work with X-Priority: low or through POST /v1/jobs'] },
  load_shed: { status: 503, type: 'overloaded_error', shouldRetry: true, suggestions: [RETRY_LATER, 'Higher-priority requests are still admitted; the gateway is under load'] },
  deadline_unreachable: { status: 503, type: 'overloaded_error', shouldRetry: true, suggestions: [RETRY_LATER, 'Raise X-Request-Timeout-Ms or submit the request as a job (POST /v1/jobs)'] },
  shutting_down: { status: 503, type: 'overloaded_error', shouldRetry: true, suggestions: ['Retry: another instance will take the request'] },
  circuit_open: { status: 503, type: 'upstream_unavailable', shouldRetry: true, suggestions: [RETRY_LATER, 'The upstream is failing; Bulwark probes it again when the cooldown ends'] },
  upstream_error: { status: 502, type: 'upstream_error', shouldRetry: true, suggestions: ['Retry later; the upstream failed after Bulwark\'s own retries'] },
  upstream_rate_limited: { status: 429, type: 'rate_limit_error', shouldRetry: true, suggestions: [RETRY_LATER, 'The upstream is rate limiting Bulwark; send fewer requests for a while'] },
  upstream_bad_response: { status: 502, type: 'upstream_error', shouldRetry: true, suggestions: ['Retry later; the upstream sent an answer Bulwark could not parse'] },
  queue_timeout: { status: 504, type: 'timeout_error', shouldRetry: true, suggestions: ['Raise X-Request-Timeout-Ms, retry later, or submit the request as a job (POST /v1/jobs)'] },
  request_timeout: { status: 504, type: 'timeout_error', shouldRetry: true, suggestions: ['Ask for fewer tokens, raise X-Request-Timeout-Ms, or use stream: true'] },
  job_not_cancellable: { status: 409, type: 'invalid_request_error', shouldRetry: false, suggestions: ['Only queued or active jobs can be cancelled'] },
  batch_not_cancellable: { status: 409, type: 'invalid_request_error', shouldRetry: false, suggestions: ['Only a batch that is validating or in progress can be cancelled'] },
  internal_error: { status: 500, type: 'server_error', shouldRetry: true, suggestions: ['Retry later; if it persists, report the X-Request-Id to the operator'] },
};

/** Fastify's own errors that reach the filter before any Bulwark code ran. */
const FASTIFY_CODES: Record<string, { code: ErrorCode; message: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'body_too_large', message: 'Request body is larger than the limit' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'unsupported_media_type', message: 'Unsupported Content-Type; send application/json' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'invalid_json', message: 'The body is empty; send a JSON object' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'invalid_body', message: 'Content-Length does not match the body' },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'invalid_json', message: 'The body is not valid JSON' },
};

function retryAfterHeaders(status: number, retryAfterMs: number | undefined): Record<string, string> {
  if (status !== 429 && status !== 503) return {};
  // A missing or non-finite hint (NaN from a bad computation) still gives a valid header: 1 s.
  const ms = retryAfterMs !== undefined && Number.isFinite(retryAfterMs) ? retryAfterMs : 1000;
  const seconds = Math.max(1, Math.ceil(ms / 1000));
  // On a 429 the exact delay too, which the OpenAI SDKs prefer to Retry-After's whole seconds.
  if (status === 429) return { 'retry-after': String(seconds), 'retry-after-ms': String(Math.max(1, Math.ceil(ms))) };
  return { 'retry-after': String(seconds) };
}

function fromCode(code: ErrorCode, message: string, param: string | null, retryAfterMs?: number): ErrorResponse {
  const mapping = MAPPINGS[code];
  return {
    status: mapping.status,
    headers: { 'x-should-retry': String(mapping.shouldRetry), ...retryAfterHeaders(mapping.status, retryAfterMs) },
    body: { error: { message, type: mapping.type, param, code, suggestions: mapping.suggestions } },
  };
}

/**
 * Maps anything thrown anywhere to the contract's error (API.md §4). Unknown errors become a 500
 * whose message reveals nothing internal.
 */
export function toErrorResponse(error: unknown): ErrorResponse {
  if (error instanceof RemoteError) return error.response as ErrorResponse;
  if (error instanceof UpstreamClientError) {
    const { message, type, param, code } = error.upstreamBody;
    return {
      status: error.status,
      headers: { 'x-should-retry': 'false' },
      body: {
        error: {
          message,
          type: type ?? 'invalid_request_error',
          param: param ?? null,
          code: code ?? null,
          suggestions: ['The upstream refused the request; correct it as its message says'],
        },
      },
    };
  }
  if (error instanceof BulwarkError) {
    return fromCode(error.code, error.message, error.param ?? null, error.retryAfterMs);
  }
  const fastifyCode = (error as { code?: unknown })?.code;
  if (typeof fastifyCode === 'string' && FASTIFY_CODES[fastifyCode]) {
    const known = FASTIFY_CODES[fastifyCode];
    return fromCode(known.code, known.message, null);
  }
  if (error instanceof SyntaxError && (error as { statusCode?: number }).statusCode === 400) {
    return fromCode('invalid_json', 'The body is not valid JSON', null);
  }
  if (error instanceof HttpException) {
    const status = error.getStatus();
    if (status === 404) return fromCode('route_not_found', 'No such route', null);
    if (status === 413) return fromCode('body_too_large', 'Request body is larger than the limit', null);
    if (status === 415) return fromCode('unsupported_media_type', 'Unsupported Content-Type; send application/json', null);
    if (status >= 400 && status < 500) return fromCode('invalid_body', safeHttpMessage(error), null);
  }
  const statusCode = (error as { statusCode?: unknown })?.statusCode;
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    if (statusCode === 413) return fromCode('body_too_large', 'Request body is larger than the limit', null);
    if (statusCode === 415) return fromCode('unsupported_media_type', 'Unsupported Content-Type; send application/json', null);
    return fromCode('invalid_body', 'The request could not be read', null);
  }
  return fromCode('internal_error', 'Internal error', null);
}

function safeHttpMessage(error: HttpException): string {
  const response = error.getResponse();
  const message = typeof response === 'object' && response && 'message' in response ? (response as { message: unknown }).message : error.message;
  return Array.isArray(message) ? message.join('; ') : String(message);
}
