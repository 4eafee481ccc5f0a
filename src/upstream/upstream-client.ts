import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { queueConfig } from '../config/sections';
import { errors as undiciErrors, Pool } from 'undici';
import type { Dispatcher } from 'undici';
import {
  BulwarkError,
  ShuttingDownError,
  UpstreamBadResponseError,
  UpstreamClientError,
  UpstreamError,
  UpstreamTimeoutError,
} from '../common/errors';
import { parseRetryAfter } from '../retry/backoff';
import { TracingService } from '../tracing/tracing.service';
import { SseParser, SSE_DONE } from './sse';
import type { InferencePayload, UpstreamAnswer, UpstreamDefinition } from './upstream.types';

export interface UpstreamCallOptions {
  /** Aborts the call: the deadline, a client gone, a cancelled job. Its reason is rethrown as is. */
  signal: AbortSignal;
  /** Longest wait for the response headers and, for a stream, its first event. */
  firstByteTimeoutMs: number;
  /** Longest silence between two chunks of a stream. */
  idleTimeoutMs: number;
}

const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Statuses that count as the upstream failing (ARCHITECTURE.md "What counts as an upstream failure"). */
export const FAILURE_STATUSES = new Set([429, 500, 502, 503, 504]);

/**
 * HTTP client for OpenAI-compatible upstreams: one keep-alive undici pool per upstream, every call
 * bounded by an AbortSignal and per-attempt timeouts, every failure turned into a typed error.
 */
@Injectable()
export class UpstreamClient implements OnModuleDestroy {
  private readonly pools = new Map<string, Pool>();
  private readonly basePaths = new Map<string, string>();

  constructor(
    @Inject(queueConfig.KEY) private readonly queue: ConfigType<typeof queueConfig>,
    private readonly tracing: TracingService,
  ) {}

  private pool(upstream: UpstreamDefinition): Pool {
    let pool = this.pools.get(upstream.name);
    if (!pool) {
      pool = new Pool(new URL(upstream.baseUrl).origin, {
        // As many connections as calls can reach this upstream at once (its own cap, else the global one),
        // so no request ever waits invisibly inside the pool while it holds a slot.
        connections: upstream.maxConcurrency ?? this.queue.maxConcurrent,
        keepAliveTimeout: 30_000,
        pipelining: 1,
      });
      this.pools.set(upstream.name, pool);
    }
    return pool;
  }

  private headers(upstream: UpstreamDefinition, stream: boolean): Record<string, string> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: stream ? 'text/event-stream' : 'application/json',
    };
    if (upstream.apiKey) headers.authorization = `Bearer ${upstream.apiKey}`;
    // The active span is this call's attempt span: the upstream (vLLM reads it) continues the trace.
    const traceparent = this.tracing.carrier();
    if (traceparent) headers.traceparent = traceparent;
    return headers;
  }

  /** The path of an upstream's base URL (`/v1`), parsed once per base URL rather than per call. */
  private basePath(upstream: UpstreamDefinition): string {
    let path = this.basePaths.get(upstream.baseUrl);
    if (path === undefined) {
      path = new URL(upstream.baseUrl).pathname.replace(/\/+$/, '');
      this.basePaths.set(upstream.baseUrl, path);
    }
    return path;
  }

  /** Sends one attempt to one upstream. Retries, breakers and fallbacks are the caller's business. */
  async send(upstream: UpstreamDefinition, payload: InferencePayload, options: UpstreamCallOptions): Promise<UpstreamAnswer> {
    // One controller per attempt, aborted by the caller's signal or the first-byte timer (cheaper than
    // AbortSignal.any, whose composite signals V8 tracks through weak references). A stream's body
    // keeps following the caller's signal until it ends.
    const attempt = new AbortController();
    const unlink = follow(options.signal, attempt);
    let streaming = false;
    const timer = setTimeout(
      () => attempt.abort(new UpstreamTimeoutError(`Upstream ${upstream.name} sent no answer within ${options.firstByteTimeoutMs} ms`)),
      // setTimeout fires at once for delays past 2^31-1 ms.
      Math.min(options.firstByteTimeoutMs, MAX_TIMER_MS),
    );
    const signal = attempt.signal;
    try {
      const response = await this.pool(upstream)
        .request({
          path: this.basePath(upstream) + payload.path,
          method: 'POST',
          headers: this.headers(upstream, payload.stream),
          body: JSON.stringify(payload.body),
          signal,
          // Our own timer bounds the wait for headers by the deadline; undici's default (300 s) would cut
          // long non-streamed answers (async jobs may run for JOB_TIMEOUT_MS) short of it.
          headersTimeout: 0,
          bodyTimeout: options.idleTimeoutMs,
        })
        .catch((error: unknown) => {
          throw translate(error, upstream, signal);
        });
      if (response.statusCode >= 400) {
        throw await errorFromResponse(upstream, response, signal);
      }
      if (!payload.stream) {
        const text = await response.body.text().catch((error: unknown) => {
          throw translate(error, upstream, signal);
        });
        try {
          return { kind: 'json', status: response.statusCode, body: JSON.parse(text) };
        } catch {
          throw new UpstreamBadResponseError(`Upstream ${upstream.name} sent a body that is not JSON`);
        }
      }
      const contentType = String(response.headers['content-type'] ?? '');
      if (!contentType.includes('text/event-stream')) {
        response.body.destroy();
        throw new UpstreamBadResponseError(`Upstream ${upstream.name} answered a stream request with ${contentType || 'no content type'}`);
      }
      const events = readEvents(response.body, upstream, options.signal, options.idleTimeoutMs, payload.path === '/responses', unlink);
      streaming = true;
      const first = await events.next().catch((error: unknown) => {
        throw translate(error, upstream, signal);
      });
      if (first.done) throw new UpstreamBadResponseError(`Upstream ${upstream.name} closed the stream before any event`);
      return { kind: 'stream', status: response.statusCode, first: [first.value], rest: { [Symbol.asyncIterator]: () => events } };
    } finally {
      clearTimeout(timer);
      if (!streaming) unlink();
    }
  }

  /** The upstream's own model list (`GET /models`), for upstreams configured without one. */
  async listModels(upstream: UpstreamDefinition, timeoutMs: number): Promise<string[]> {
    const response = await this.pool(upstream).request({
      path: `${this.basePath(upstream)}/models`,
      method: 'GET',
      headers: upstream.apiKey ? { authorization: `Bearer ${upstream.apiKey}` } : {},
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new UpstreamError(`Upstream ${upstream.name} answered ${response.statusCode} to GET /models`, response.statusCode);
    const parsed = JSON.parse(text) as { data?: { id?: unknown }[] };
    return (parsed.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === 'string');
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.allSettled([...this.pools.values()].map((pool) => pool.destroy()));
    this.pools.clear();
  }
}

/**
 * Events that end a Responses API stream. Such a stream has no `[DONE]` (OpenAI and vLLM close it after
 * one of these), so a close before one of them is a broken stream.
 */
const RESPONSES_TERMINAL_EVENTS = new Set(['response.completed', 'response.incomplete', 'response.failed', 'error']);

/**
 * Reads an upstream SSE body into validated `data` payloads, stopping at `[DONE]`, or, for the
 * Responses API (`typedEvents`), at the close that follows its terminal event.
 */
async function* readEvents(
  body: Dispatcher.ResponseData['body'],
  upstream: UpstreamDefinition,
  signal: AbortSignal,
  idleTimeoutMs: number,
  typedEvents: boolean,
  /** Stops the call's controller from following the caller's signal: called when the stream is over. */
  unlink: () => void,
): AsyncGenerator<string> {
  const parser = new SseParser();
  let sawDone = false;
  let ended = false;
  try {
    for await (const chunk of body) {
      for (const data of parser.push(chunk as Buffer)) {
        if (data.trim() === SSE_DONE) {
          sawDone = true;
          return;
        }
        let event: unknown;
        try {
          event = JSON.parse(data);
        } catch {
          throw new UpstreamBadResponseError(`Upstream ${upstream.name} sent a stream event that is not JSON`);
        }
        if (typedEvents) ended = RESPONSES_TERMINAL_EVENTS.has(String((event as { type?: unknown } | null)?.type));
        yield data;
      }
    }
    for (const data of parser.end()) {
      if (data.trim() === SSE_DONE) {
        sawDone = true;
        return;
      }
    }
    if (typedEvents && ended) {
      sawDone = true;
      return;
    }
    if (!sawDone) throw new UpstreamError(`Upstream ${upstream.name} closed the stream before ${typedEvents ? 'its final event' : '[DONE]'}`);
  } catch (error) {
    if (error instanceof BulwarkError) throw error;
    if (error instanceof undiciErrors.BodyTimeoutError) {
      throw new UpstreamTimeoutError(`Upstream ${upstream.name} stream was silent for ${idleTimeoutMs} ms`);
    }
    throw translate(error, upstream, signal);
  } finally {
    if (!sawDone) body.destroy();
    unlink();
  }
}

/** Aborts `controller` with `signal`'s reason when `signal` aborts (at once if it has); returns the undo. */
function follow(signal: AbortSignal, controller: AbortController): () => void {
  if (signal.aborted) {
    controller.abort(signal.reason);
    return () => undefined;
  }
  const abort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', abort, { once: true });
  return () => signal.removeEventListener('abort', abort);
}

/** Turns an undici failure into Bulwark's typed error; an aborted call rethrows its abort reason. */
function translate(error: unknown, upstream: UpstreamDefinition, signal: AbortSignal): unknown {
  if (error instanceof BulwarkError) return error;
  if (signal.aborted) return signal.reason;
  if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError) {
    return new UpstreamTimeoutError(`Upstream ${upstream.name} timed out`);
  }
  if (error instanceof undiciErrors.ConnectTimeoutError) {
    return new UpstreamError(`Could not connect to upstream ${upstream.name} in time`);
  }
  if (error instanceof undiciErrors.ClientDestroyedError || (error as { code?: string })?.code === 'UND_ERR_DESTROYED') {
    // Bulwark's own pool was closed (shutdown after the grace period): not the upstream's fault.
    return new ShuttingDownError();
  }
  const code = (error as { code?: string })?.code ?? 'error';
  return new UpstreamError(`Upstream ${upstream.name} connection failed (${code})`, undefined, { cause: error });
}

async function errorFromResponse(upstream: UpstreamDefinition, response: Dispatcher.ResponseData, signal: AbortSignal): Promise<Error> {
  let text = '';
  try {
    for await (const chunk of response.body) {
      text += (chunk as Buffer).toString('utf8');
      if (text.length > MAX_ERROR_BODY_BYTES) break;
    }
  } catch (error) {
    if (signal.aborted) return signal.reason as Error;
  } finally {
    response.body.destroy();
  }
  const status = response.statusCode;
  const upstreamMessage = extractMessage(text);
  if (status === 401 || status === 403) {
    // The upstream refused Bulwark's own credentials: the caller did nothing wrong, and the upstream's
    // message may quote the gateway's key, so it is not passed on.
    return new UpstreamError(`Upstream ${upstream.name} refused the gateway's credentials (${status}); the operator must fix its key`, status);
  }
  if (FAILURE_STATUSES.has(status) || status >= 500) {
    const detail = upstreamMessage ? `: ${upstreamMessage.message.slice(0, 300)}` : '';
    return new UpstreamError(`Upstream ${upstream.name} answered ${status}${detail}`, status, {
      retryAfterMs: parseRetryAfter(response.headers, Date.now()),
    });
  }
  return new UpstreamClientError(status, upstreamMessage ?? { message: `Upstream refused the request with status ${status}` });
}

function extractMessage(text: string): { message: string; type?: string; param?: string | null; code?: string | null } | undefined {
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown; detail?: unknown };
    const error = parsed.error;
    if (error && typeof error === 'object' && typeof (error as { message?: unknown }).message === 'string') {
      const e = error as { message: string; type?: unknown; param?: unknown; code?: unknown };
      return {
        message: e.message,
        type: typeof e.type === 'string' ? e.type : undefined,
        param: typeof e.param === 'string' ? e.param : null,
        code: typeof e.code === 'string' ? e.code : null,
      };
    }
    if (typeof error === 'string') return { message: error };
    if (typeof parsed.message === 'string') return { message: parsed.message };
    if (typeof parsed.detail === 'string') return { message: parsed.detail };
  } catch {
    // not JSON: fall through to the generic message
  }
  return undefined;
}
