import type { Priority } from '../common/priority';
import { RandomSource } from '../common/random';

/**
 * Probability in [0,1] of refusing a request of `priority` when a resource is `fill` (0..1+) used,
 * with shedding starting at `threshold` (the seed's Stage 2 graduated response, applied per priority).
 *
 * - `low`: 0 at `threshold`, rising linearly to 1 at fill 1.
 * - `normal`: starts halfway between `threshold` and 1, rising linearly to 1 at fill 1.
 * - `high`: 0 below fill 1.
 * - fill >= 1 gives 1 for every priority; threshold >= 1 leaves only that rule.
 *
 * A non-finite or negative fill counts as empty (0); a negative threshold counts as 0.
 */
export function rejectionProbability(fill: number, threshold: number, priority: Priority): number {
  if (fill >= 1) return 1;
  if (!(fill > 0)) return 0;
  const t = Number.isFinite(threshold) ? Math.max(0, threshold) : 1;
  if (t >= 1 || priority === 'high') return 0;
  const start = priority === 'low' ? t : (t + 1) / 2;
  if (fill <= start) return 0;
  return Math.min(1, (fill - start) / (1 - start));
}

/**
 * Draws once from `random` and decides whether to refuse the request. No draw is made when the
 * outcome is certain, so a seeded sequence is only consumed by genuinely random decisions.
 */
export function shouldShed(
  fill: number,
  threshold: number,
  priority: Priority,
  random: RandomSource,
): boolean {
  const p = rejectionProbability(fill, threshold, priority);
  if (p <= 0) return false;
  if (p >= 1) return true;
  return random.next() < p;
}
