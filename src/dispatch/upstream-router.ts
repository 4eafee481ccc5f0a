import type { RandomSource } from '../common/random';
import type { UpstreamDefinition } from '../upstream/upstream.types';

/** How a model's upstreams are ordered: `ROUTING`. */
export type RoutingMode = 'least-loaded' | 'weighted' | 'prefix-aware';

/** What prefix-aware routing knows of one candidate upstream. */
export interface PrefixCandidate {
  upstream: UpstreamDefinition;
  /** Blocks of the request's prefix chain it recently served (0: none). */
  matched: number;
  /** Routing load: in flight on every instance plus its own queue. */
  load: number;
  /** KV cache at or above the pressure threshold. */
  pressured: boolean;
}

/**
 * The most a candidate may carry under the load bound: (1 + ε) × the average load per unit of weight
 * of the model's upstreams, this request included, times its weight, rounded up (so the least loaded
 * upstream is always within it). Consistent hashing with bounded loads, as Vimeo and Google use it.
 */
export function loadBound(weight: number, totalLoad: number, totalWeight: number, epsilon: number): number {
  if (weight <= 0 || totalWeight <= 0) return 0;
  return Math.ceil(((1 + epsilon) * (totalLoad + 1) * weight) / totalWeight);
}

/**
 * Prefix-aware order: first the upstreams within the load bound whose KV cache is not under pressure,
 * the longest held prefix first, then the least load per weight; after them the rest (over the bound or
 * under pressure), unpressured and least loaded first. Ties are broken at random; weight 0 comes last.
 */
export function prefixAwareOrder(candidates: readonly PrefixCandidate[], epsilon: number, random: RandomSource): UpstreamDefinition[] {
  if (candidates.length < 2) return candidates.map((c) => c.upstream);
  const totalLoad = candidates.reduce((sum, c) => sum + c.load, 0);
  const totalWeight = candidates.reduce((sum, c) => sum + Math.max(0, c.upstream.weight), 0);
  return candidates
    .map((c) => {
      const perWeight = c.upstream.weight > 0 ? c.load / c.upstream.weight : Number.POSITIVE_INFINITY;
      const eligible = !c.pressured && c.load < loadBound(c.upstream.weight, totalLoad, totalWeight, epsilon);
      return { c, eligible, perWeight, tie: random.next() };
    })
    .sort((a, b) => {
      if (a.eligible !== b.eligible) return a.eligible ? -1 : 1;
      if (a.eligible) return b.c.matched - a.c.matched || a.perWeight - b.perWeight || a.tie - b.tie;
      return Number(a.c.pressured) - Number(b.c.pressured) || a.perWeight - b.perWeight || a.tie - b.tie;
    })
    .map((e) => e.c.upstream);
}

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
