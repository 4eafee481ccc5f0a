import type { ServiceTierName } from '../config/key-limits';
import { BulwarkError, InvalidRequestError, ResourceUnavailableError } from './errors';
import type { Priority } from './priority';

/** The tier that serves a request, as OpenAI names it: `priority` (high), `default` (the key's own), `flex` (low). */
export type ServiceTier = ServiceTierName;

const ACCEPTED = ['auto', 'default', 'flex', 'priority'];

/**
 * Reads a body's `service_tier`: undefined when absent or null, `auto` read as `default`.
 * @throws InvalidRequestError (400 `invalid_body`, param `service_tier`) for any other value
 */
export function parseServiceTier(raw: unknown): ServiceTier | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'string' || !ACCEPTED.includes(raw)) {
    const shown = typeof raw === 'string' ? JSON.stringify(raw.slice(0, 32)) : typeof raw;
    throw new InvalidRequestError('invalid_body', `service_tier must be one of auto, default, flex, priority, not ${shown}`, 'service_tier');
  }
  return raw === 'auto' ? 'default' : (raw as ServiceTier);
}

/** The queue priority of a tier: `priority` → high, `flex` → low, `default` → the key's own tier. */
export function priorityOfTier(tier: ServiceTier, keyTier: Priority): Priority {
  if (tier === 'priority') return 'high';
  if (tier === 'flex') return 'low';
  return keyTier;
}

/** Admission's refusals for lack of capacity, which a `flex` request hears as 429 `resource_unavailable`. */
const CAPACITY_REFUSALS: ReadonlySet<string> = new Set(['queue_full', 'load_shed', 'deadline_unreachable']);

/**
 * What a request of `tier` is told for `error`: for `flex`, a refusal for lack of capacity becomes 429
 * `resource_unavailable` with the same Retry-After, as OpenAI answers flex requests; anything else is unchanged.
 */
export function refusalForTier(error: unknown, tier: ServiceTier | undefined): unknown {
  if (tier !== 'flex' || !(error instanceof BulwarkError) || !CAPACITY_REFUSALS.has(error.code)) return error;
  return new ResourceUnavailableError(error.code, error.retryAfterMs, error);
}
