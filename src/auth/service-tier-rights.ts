import { TierNotAllowedError } from '../common/errors';
import type { RequestContext } from '../common/request-context';
import { parseServiceTier, priorityOfTier, ServiceTier } from '../common/service-tier';
import { defaultServiceTiers } from '../config/key-limits';

/** Every tier: what the admin key and an open gateway (no client keys) may use. */
const ALL_TIERS: readonly ServiceTier[] = ['priority', 'default', 'flex'];

/**
 * Reads a body's `service_tier`, checks that the caller's key may use it and records it on the request
 * (its tier, and the priority that takes the place of `X-Priority`). The field is then taken out of the
 * body: it is Bulwark's scheduling, and an upstream such as OpenAI would bill it as its own tier.
 * Returns the tier that serves the request (`default` when the body names none).
 * @throws InvalidRequestError (400) for an unknown value; TierNotAllowedError (403) for a tier the key may not use
 */
export function applyServiceTier(context: RequestContext, body: unknown): ServiceTier {
  if (typeof body !== 'object' || body === null || !('service_tier' in body)) return 'default';
  const record = body as Record<string, unknown>;
  const tier = parseServiceTier(record.service_tier);
  delete record.service_tier;
  if (tier === undefined) return 'default';
  const { client } = context;
  const allowed = client.admin || client.id === 'anonymous' ? ALL_TIERS : (client.serviceTiers ?? defaultServiceTiers(client.tier));
  if (!allowed.includes(tier)) throw new TierNotAllowedError(tier, allowed);
  context.serviceTier = tier;
  context.servicePriority = priorityOfTier(tier, client.tier);
  return tier;
}
