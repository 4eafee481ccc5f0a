import { Priority } from '../common/priority';
import { Strategy } from './health-score';

/** What a strategy does to requests. */
export interface StrategyEffects {
  /** Whether a request of this priority is admitted at all. */
  admits: (p: Priority) => boolean;
  /** Upper bound for `max_tokens`, or null for none. */
  maxTokensCap: number | null;
  /** Whether failed upstream calls may be retried. */
  retriesAllowed: boolean;
}

const admitAll = (): boolean => true;
const admitHighOnly = (p: Priority): boolean => p === 'high';

/**
 * What a strategy does to a request: whether the priority is admitted at all, the max_tokens cap,
 * whether retries are allowed.
 *
 * - healthy, stressed: admit all, no cap, retries on.
 * - degraded: admit all, cap at `degradedMaxTokens`, retries off.
 * - critical: admit `high` only, cap, retries off.
 *
 * @throws RangeError when `degradedMaxTokens` is not a positive integer.
 */
export function strategyEffects(strategy: Strategy, degradedMaxTokens: number): StrategyEffects {
  if (!Number.isInteger(degradedMaxTokens) || degradedMaxTokens <= 0) {
    throw new RangeError(`degradedMaxTokens must be a positive integer, got ${degradedMaxTokens}`);
  }
  switch (strategy) {
    case 'healthy':
    case 'stressed':
      return { admits: admitAll, maxTokensCap: null, retriesAllowed: true };
    case 'degraded':
      return { admits: admitAll, maxTokensCap: degradedMaxTokens, retriesAllowed: false };
    case 'critical':
      return { admits: admitHighOnly, maxTokensCap: degradedMaxTokens, retriesAllowed: false };
  }
}

/**
 * Returns the body with `max_tokens` (and `max_completion_tokens` if present) capped at `cap`, and
 * whether anything changed; never mutates the input (an unchanged body is returned as is).
 *
 * When the body sets no limit at all, `max_tokens` is set to the cap, because an unbounded generation
 * is exactly what degraded mode must stop. When only `max_completion_tokens` is set, that one is capped
 * and `max_tokens` is not added, since the generation is already bounded and some upstreams reject both.
 * Non-numeric values are left for request validation to refuse. The Responses API (`api: 'responses'`)
 * has one limit, `max_output_tokens`, set or lowered to the cap.
 */
export function capMaxTokens(
  body: Record<string, unknown>,
  cap: number | null,
  api: 'chat' | 'responses' = 'chat',
): { body: Record<string, unknown>; capped: boolean } {
  if (cap === null) return { body, capped: false };
  if (api === 'responses') return capField(body, 'max_output_tokens', cap);
  const changes: Record<string, number> = {};
  const hasMaxTokens = body.max_tokens !== undefined && body.max_tokens !== null;
  const hasCompletion =
    body.max_completion_tokens !== undefined && body.max_completion_tokens !== null;
  if (!hasMaxTokens && !hasCompletion) {
    changes.max_tokens = cap;
  }
  for (const key of ['max_tokens', 'max_completion_tokens'] as const) {
    const value = body[key];
    if (typeof value === 'number' && value > cap) changes[key] = cap;
  }
  if (Object.keys(changes).length === 0) return { body, capped: false };
  return { body: { ...body, ...changes }, capped: true };
}

/** Sets `field` to `cap` when it is absent or above it. */
function capField(body: Record<string, unknown>, field: string, cap: number): { body: Record<string, unknown>; capped: boolean } {
  const value = body[field];
  if (value !== undefined && value !== null && !(typeof value === 'number' && value > cap)) return { body, capped: false };
  return { body: { ...body, [field]: cap }, capped: true };
}
