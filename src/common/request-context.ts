import type { FastifyReply, FastifyRequest } from 'fastify';
import type { KeyLimits } from '../config/key-limits';
import type { Priority } from './priority';
import type { ServiceTier } from './service-tier';
import { CancelledError, InvalidRequestError, RequestTimeoutError } from './errors';

/** Who is calling, as the auth guard resolved it. */
export interface ClientIdentity {
  /** A stable, non-secret id of the key (a hash prefix), or `anonymous` when auth is off. */
  id: string;
  /** The key's configured name (API_KEYS_FILE), else its id: non-secret, safe for logs and metric labels. */
  name: string;
  tier: Priority;
  admin: boolean;
  /** Relative share of this key among the keys waiting at one priority; default 1. */
  weight: number;
  /** Most requests of this key running at once, across instances (API_KEYS_FILE `maxConcurrent`). */
  maxConcurrent?: number;
  /** Largest fraction (0-1] of MAX_QUEUE_SIZE this key may hold waiting (API_KEYS_FILE `maxQueueShare`). */
  maxQueueShare?: number;
  /** Request and token limits of this key (API_KEYS_FILE); absent when it has none of its own. */
  limits?: KeyLimits;
  /** The `service_tier` values this key may ask for; absent means those of its tier (`priority` for high keys only). */
  serviceTiers?: readonly ServiceTier[];
}

/** Tokens a request holds against its key's token limits, from admission until its answer ends. */
export interface TokenReservation {
  /** Tokens reserved: the prompt's estimate plus the output limit (or the configured default). */
  reserved: number;
  /** The prompt's estimated tokens, what an answer without `usage` is charged on top of what was relayed. */
  promptTokens: number;
}

/**
 * Everything the pipeline needs to know about one HTTP request, made once when it arrives: its
 * id, its deadline and the signal that fires when the deadline passes or the client goes away.
 */
export interface RequestContext {
  requestId: string;
  receivedAt: number;
  /** Epoch ms after which no work for this request may start or continue. */
  deadlineAt: number;
  timeoutMs: number;
  requestedPriority: Priority;
  /** `async` for POST /v1/jobs and `Prefer: respond-async`: answered at once, worked on later. */
  mode: 'sync' | 'async';
  /** Aborted with a RequestTimeoutError at the deadline or a CancelledError when the client leaves. */
  signal: AbortSignal;
  /** Set by the auth guard; anonymous (tier high) while API_KEYS is unset. */
  client: ClientIdentity;
  /** Stops the deadline timer; called when the answer is complete. */
  finish(): void;
  /** The body's `service_tier` (`auto` read as `default`), once the rate-limit guard allowed it. */
  serviceTier?: ServiceTier;
  /** The priority that `service_tier` gives; it takes the place of `X-Priority` and the tier cap. */
  servicePriority?: Priority;
  /** Set while the request holds tokens against its key's limits; settled when the answer ends. */
  tokens?: TokenReservation;
}

declare module 'fastify' {
  interface FastifyRequest {
    bulwark?: RequestContext;
  }
}

const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low'];

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Reads `X-Priority`; absent means normal. */
export function parsePriority(raw: string | undefined): Priority {
  if (raw === undefined || raw === '') return 'normal';
  const value = raw.trim().toLowerCase();
  if (!(PRIORITIES as readonly string[]).includes(value)) {
    throw new InvalidRequestError('invalid_header', `X-Priority must be high, normal or low, not ${JSON.stringify(raw.slice(0, 32))}`, 'X-Priority');
  }
  return value as Priority;
}

/** Reads `X-Request-Timeout-Ms`, capped by the configured request timeout. */
export function parseTimeout(raw: string | undefined, maxMs: number): number {
  if (raw === undefined || raw === '') return maxMs;
  // Any positive integer is a valid deadline; one beyond the cap is capped, not refused (API.md §2).
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1) {
    throw new InvalidRequestError('invalid_header', 'X-Request-Timeout-Ms must be a positive integer of milliseconds', 'X-Request-Timeout-Ms');
  }
  return Math.min(Number(raw), maxMs);
}

/** RFC 7240: `Prefer: respond-async` (possibly among other preferences). */
export function wantsAsync(prefer: string | undefined): boolean {
  return prefer !== undefined && prefer.split(',').some((p) => p.trim().toLowerCase().split(';')[0].trim() === 'respond-async');
}

const ANONYMOUS: ClientIdentity = Object.freeze({ id: 'anonymous', name: 'anonymous', tier: 'high', admin: false, weight: 1 });

/**
 * Builds the request's context: parses its headers (throwing typed 400s), starts its deadline and
 * ties its signal to the client's connection. Idempotent per request.
 */
export function attachRequestContext(
  request: FastifyRequest,
  reply: FastifyReply,
  limits: { requestTimeoutMs: number; jobTimeoutMs: number; asyncRoute: boolean },
  now = Date.now(),
): RequestContext {
  if (request.bulwark) return request.bulwark;
  const requestedPriority = parsePriority(header(request, 'x-priority'));
  const mode = limits.asyncRoute || wantsAsync(header(request, 'prefer')) ? 'async' : 'sync';
  const timeoutMs = parseTimeout(header(request, 'x-request-timeout-ms'), mode === 'async' ? limits.jobTimeoutMs : limits.requestTimeoutMs);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new RequestTimeoutError(timeoutMs)), timeoutMs);
  // A response closed before it finished means the client went away: stop all work for it.
  reply.raw.once('close', () => {
    clearTimeout(timer);
    if (!reply.raw.writableFinished) controller.abort(new CancelledError('client'));
  });
  const context: RequestContext = {
    requestId: String(request.id),
    receivedAt: now,
    deadlineAt: now + timeoutMs,
    timeoutMs,
    requestedPriority,
    mode,
    signal: controller.signal,
    client: ANONYMOUS,
    finish: () => clearTimeout(timer),
  };
  request.bulwark = context;
  return context;
}

const RANK: Record<Priority, number> = { high: 0, normal: 1, low: 2 };

/**
 * The priority a request gets: the one its `service_tier` gives (allowed for its key by the rate-limit
 * guard), else what it asked for, capped by its key's tier.
 */
export function effectivePriority(context: Pick<RequestContext, 'requestedPriority' | 'client' | 'servicePriority'>): Priority {
  if (context.servicePriority) return context.servicePriority;
  return RANK[context.requestedPriority] >= RANK[context.client.tier] ? context.requestedPriority : context.client.tier;
}
