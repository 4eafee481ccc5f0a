import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { SseParser, SSE_DONE } from '../upstream/sse';
import type { LoadTestOptions } from './loadtest-options';
import { RequestOutcome, StageRecorder, StageResult } from './stage-recorder';

/** What the progress line shows while a stage runs. */
export interface StageProgress {
  concurrency: number;
  requests: number;
  errors: number;
  elapsedMs: number;
}

const MAX_ERROR_BODY_CHARS = 64 * 1024;

/**
 * Drives the gateway at a fixed concurrency: `concurrency` clients, each sending its next request as
 * soon as the previous one is fully read, until the stage's time (or request count) is spent; requests
 * in flight then finish. undici rather than autocannon: a stream's time to first token is measured per
 * request, which autocannon's per-response hooks cannot see.
 */
export async function runStage(options: LoadTestOptions, concurrency: number, onProgress: (progress: StageProgress) => void): Promise<StageResult> {
  const recorder = new StageRecorder(concurrency);
  const dispatcher = new Agent({ connections: concurrency, keepAliveTimeout: 10_000, headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs });
  const startedAt = performance.now();
  const stopAt = startedAt + options.durationMs;
  let sent = 0;
  const progress = () => onProgress({ concurrency, requests: recorder.completed, errors: recorder.errors, elapsedMs: performance.now() - startedAt });
  const ticker = setInterval(progress, 250);
  const client = async () => {
    while (performance.now() < stopAt && (options.requests === undefined || sent < options.requests)) {
      sent++;
      const outcome = await sendOne(options, dispatcher);
      recorder.record(outcome);
      if (options.honorRetryAfter && outcome.retryAfterS !== undefined) await pause(Math.min(outcome.retryAfterS * 1000, stopAt - performance.now()));
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, client));
  } finally {
    clearInterval(ticker);
    await dispatcher.close().catch(() => undefined);
  }
  progress();
  return recorder.finish(performance.now() - startedAt);
}

function pause(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

/** The request every client sends. */
export function requestOf(options: LoadTestOptions): { url: string; headers: Record<string, string>; body: string } {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: options.stream ? 'text/event-stream' : 'application/json' };
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  if (options.priority) headers['x-priority'] = options.priority;
  const body = JSON.stringify({
    model: options.model,
    messages: [{ role: 'user', content: options.prompt }],
    max_tokens: options.maxTokens,
    stream: options.stream,
  });
  return { url: `${options.url}/chat/completions`, headers, body };
}

async function sendOne(options: LoadTestOptions, dispatcher: Agent): Promise<RequestOutcome> {
  const { url, headers, body } = requestOf(options);
  const started = performance.now();
  const signal = AbortSignal.timeout(options.timeoutMs);
  try {
    const response = await request(url, { method: 'POST', headers, body, dispatcher, signal });
    const status = response.statusCode;
    if (status < 200 || status >= 300) {
      const text = (await response.body.text()).slice(0, MAX_ERROR_BODY_CHARS);
      return { status, errorCode: errorCodeOf(text) ?? `http_${status}`, latencyMs: performance.now() - started, retryAfterS: retryAfterOf(response.headers['retry-after']) };
    }
    if (!options.stream) {
      const text = await response.body.text();
      return { status, errorCode: errorCodeOf(text), latencyMs: performance.now() - started };
    }
    const parser = new SseParser();
    let ttftMs: number | undefined;
    let errorCode: string | undefined;
    let done = false;
    const onEvent = (data: string) => {
      if (data === SSE_DONE) {
        done = true;
        return;
      }
      const parsed = parseJson(data) as { error?: { code?: unknown }; choices?: { delta?: { content?: unknown }; text?: unknown }[] } | undefined;
      if (parsed?.error) errorCode ??= typeof parsed.error.code === 'string' ? parsed.error.code : 'stream_error';
      const choice = parsed?.choices?.[0];
      const token = choice?.delta?.content ?? choice?.text;
      if (ttftMs === undefined && typeof token === 'string' && token !== '') ttftMs = performance.now() - started;
    };
    for await (const chunk of response.body) for (const data of parser.push(chunk as Buffer)) onEvent(data);
    for (const data of parser.end()) onEvent(data);
    if (!done && errorCode === undefined) errorCode = 'stream_incomplete';
    return { status, errorCode, latencyMs: performance.now() - started, ttftMs };
  } catch (error) {
    const code = signal.aborted ? 'client_timeout' : ((error as { code?: unknown }).code ?? 'connection_error');
    return { errorCode: String(code), latencyMs: performance.now() - started };
  }
}

/** The contract's `error.code` of an error body, if it has one. */
export function errorCodeOf(text: string): string | undefined {
  const parsed = parseJson(text) as { error?: { code?: unknown } } | undefined;
  if (!parsed?.error) return undefined;
  return typeof parsed.error.code === 'string' ? parsed.error.code : 'error';
}

function retryAfterOf(header: string | string[] | undefined): number | undefined {
  const value = Number(Array.isArray(header) ? header[0] : header);
  return header !== undefined && Number.isFinite(value) ? value : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
