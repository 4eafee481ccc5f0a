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

/** Marks a route whose requests become async jobs (their deadline is JOB_TIMEOUT_MS). */
export const AsyncJobRoute = () => SetMetadata(ASYNC_JOB_ROUTE, true);
