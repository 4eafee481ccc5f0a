import { SetMetadata } from '@nestjs/common';
import type { ExecutionContext } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';

/**
 * What a route is, which decides the guards it passes:
 * - `inference`: upstream-bound work (auth, rate limit, admission);
 * - `client`: client routes that cost no upstream work (auth, rate limit);
 * - `admin`: the admin key;
 * - `public`: health and metrics, which bypass everything so they stay fast under any load.
 */
export type RouteKind = 'inference' | 'client' | 'admin' | 'public';

export const ROUTE_KIND = 'bulwark:route-kind';

export const Kind = (kind: RouteKind) => SetMetadata(ROUTE_KIND, kind);

export function routeKindOf(reflector: Reflector, context: ExecutionContext): RouteKind {
  return reflector.getAllAndOverride<RouteKind>(ROUTE_KIND, [context.getHandler(), context.getClass()]) ?? 'client';
}

export const ASYNC_JOB_ROUTE = 'bulwark:async-job-route';

/** When a route's requests are async work, whose deadline is JOB_TIMEOUT_MS (see {@link AsyncJobRoute}). */
export type AsyncWhen = 'always' | 'background';

/**
 * Marks a route whose requests become async jobs or serve one (their deadline is JOB_TIMEOUT_MS):
 * `always`, or `background` for those whose body asks for `background: true` (the Responses API).
 */
export const AsyncJobRoute = (when: AsyncWhen = 'always') => SetMetadata(ASYNC_JOB_ROUTE, when);

/** Whether a request to a route marked `when` is async work. */
export function isAsyncRequest(when: AsyncWhen | undefined, body: unknown): boolean {
  if (when === 'always') return true;
  return when === 'background' && typeof body === 'object' && body !== null && (body as { background?: unknown }).background === true;
}
