import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { errorCodeOf } from '../../src/loadtest/load-runner';

/** One request of a client, as the gateway answered it. */
export interface Outcome {
  group: string;
  /** HTTP status; undefined when no answer arrived (connection error). */
  status?: number;
  /** The contract's `error.code` of an error answer. */
  code?: string;
  /** The `X-Upstream` header of the answer. */
  upstream?: string;
  latencyMs: number;
  /** The request's own tag (e.g. its size), as the group's `request` gave it. */
  tag?: string;
}

/** The request a client sends: headers on top of JSON content type, a JSON body, a tag for the outcome. */
export interface ClientRequest {
  headers?: Record<string, string>;
  body: Record<string, unknown>;
  tag?: string;
}

/** Clients that behave alike: each sends, reads the whole answer, optionally pauses, and sends again. */
export interface ClientGroup {
  name: string;
  clients: number;
  /** The `sequence`-th request (from 0) of client `client` (from 0). */
  request(client: number, sequence: number): ClientRequest;
  /** Pause after every answer (a client that thinks between requests); default none. */
  pauseMs?: number;
}

/** The outcomes of the requests answered within the run; those still running at its end are cut and not counted. */
export interface ClosedLoopResult {
  outcomes: Outcome[];
  /** Requests still running when the time was up (aborted). */
  cut: number;
  elapsedMs: number;
}

/**
 * After a 429 or 503, a client waits this long before its next request: a script that retries soon
 * rather than one that honours Retry-After, so the pressure stays on without spinning the CPU that the
 * gateway and the load generator share.
 */
export const REFUSED_PAUSE_MS = 100;
/** No run sends more than this many requests, whatever its duration. */
const MAX_REQUESTS = 200_000;

/**
 * Runs closed-loop clients against `origin`'s chat completions for `durationMs`: every client keeps one
 * request in flight (or pauses, see {@link ClientGroup.pauseMs} and {@link REFUSED_PAUSE_MS}). When the
 * time is up, requests in flight are aborted and left out of the outcomes.
 */
export async function runClosedLoop(origin: string, groups: ClientGroup[], durationMs: number): Promise<ClosedLoopResult> {
  const total = groups.reduce((sum, g) => sum + g.clients, 0);
  const dispatcher = new Agent({ connections: total, keepAliveTimeout: 10_000 });
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), durationMs);
  const outcomes: Outcome[] = [];
  let sent = 0;
  let cut = 0;
  const client = async (group: ClientGroup, index: number) => {
    for (let sequence = 0; !stop.signal.aborted && sent < MAX_REQUESTS; sequence++) {
      sent++;
      const outcome = await send(origin, dispatcher, group.name, group.request(index, sequence), stop.signal);
      if (!outcome) {
        cut++;
        break;
      }
      outcomes.push(outcome);
      const refused = outcome.status === 429 || outcome.status === 503;
      await pause(Math.max(group.pauseMs ?? 0, refused ? REFUSED_PAUSE_MS : 0), stop.signal);
    }
  };
  const started = performance.now();
  try {
    await Promise.all(groups.flatMap((group) => Array.from({ length: group.clients }, (_, i) => client(group, i))));
  } finally {
    clearTimeout(timer);
    await dispatcher.destroy().catch(() => undefined);
  }
  return { outcomes, cut, elapsedMs: Math.min(durationMs, performance.now() - started) };
}

/** Sends one request and reads its answer; undefined when `stop` cut it. */
async function send(origin: string, dispatcher: Agent, group: string, req: ClientRequest, stop: AbortSignal): Promise<Outcome | undefined> {
  const started = performance.now();
  try {
    const response = await request(`${origin}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...req.headers },
      body: JSON.stringify(req.body),
      dispatcher,
      signal: stop,
    });
    const text = await response.body.text();
    const upstream = response.headers['x-upstream'];
    return {
      group,
      status: response.statusCode,
      code: response.statusCode === 200 ? undefined : errorCodeOf(text),
      upstream: typeof upstream === 'string' ? upstream : undefined,
      latencyMs: performance.now() - started,
      tag: req.tag,
    };
  } catch (error) {
    if (stop.aborted) return undefined;
    return { group, code: String((error as { code?: unknown }).code ?? 'connection_error'), latencyMs: performance.now() - started, tag: req.tag };
  }
}

/** Sends `requests` one after the other (a warm-up); throws unless each is answered 200 within `timeoutMs`. */
export async function sendSequentially(origin: string, requests: ClientRequest[], timeoutMs: number): Promise<void> {
  const dispatcher = new Agent({ connections: 1 });
  try {
    for (const req of requests) {
      const outcome = await send(origin, dispatcher, 'warm-up', req, AbortSignal.timeout(timeoutMs));
      if (outcome?.status !== 200) throw new Error(`warm-up request ${req.tag ?? ''} answered ${outcome ? `${outcome.status} ${outcome.code}` : `nothing within ${timeoutMs} ms`}`);
    }
  } finally {
    await dispatcher.close();
  }
}

/** Waits `ms`, or less when `signal` aborts first. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The value below which `p` % of `values` lie (nearest rank); NaN for none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Counts outcomes by status and code, e.g. `{ "200": 90, "503 load_shed": 12 }`. */
export function statusMix(outcomes: Outcome[]): Record<string, number> {
  const mix: Record<string, number> = {};
  for (const o of outcomes) {
    const key = o.status === undefined ? `no answer ${o.code ?? ''}`.trim() : o.status === 200 ? '200' : `${o.status} ${o.code ?? ''}`.trim();
    mix[key] = (mix[key] ?? 0) + 1;
  }
  return mix;
}
