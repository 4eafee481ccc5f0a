import type { RandomSource } from '../common/random';
import type { UpstreamDefinition } from '../upstream/upstream.types';

/** How a model's upstreams are ordered: `ROUTING`. */
export type RoutingMode = 'least-loaded' | 'weighted';

/**
 * Least loaded first: load (in flight on every instance plus the upstream's own queue) divided by
 * weight, ties broken at random. An upstream of weight 0 comes last (a standby).
 */
export function leastLoadedOrder(upstreams: readonly UpstreamDefinition[], load: (name: string) => number, random: RandomSource): UpstreamDefinition[] {
  if (upstreams.length < 2) return [...upstreams];
  return upstreams
    .map((u) => ({ u, score: u.weight > 0 ? load(u.name) / u.weight : Number.POSITIVE_INFINITY, tie: random.next() }))
    .sort((a, b) => a.score - b.score || a.tie - b.tie)
    .map((e) => e.u);
}

/** Weighted random order (Efraimidis–Spirakis): heavier upstreams tend to come first; weight 0 last. */
export function weightedOrder(upstreams: readonly UpstreamDefinition[], random: RandomSource): UpstreamDefinition[] {
  if (upstreams.length < 2) return [...upstreams];
  return upstreams
    .map((u) => ({ u, key: u.weight > 0 ? Math.pow(random.next(), 1 / u.weight) : -1 }))
    .sort((a, b) => b.key - a.key)
    .map((e) => e.u);
}
