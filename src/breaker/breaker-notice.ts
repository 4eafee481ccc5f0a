/**
 * What instances tell each other about a breaker. Only two states are shared: `open` (with the time
 * left, so that clocks of different hosts never need to agree) and `closed`. Half-open is reached by
 * every instance on its own when the open period ends; its one probe round is held by a permit.
 */
export interface BreakerNotice {
  key: string;
  state: 'open' | 'closed';
  /** Time left of the open period when the notice was written; 0 for `closed`. */
  remainingMs: number;
  /** Length of the open period (the next one after a failed probe doubles it). */
  cooldownMs: number;
  /** Whether the key belongs to an upstream without a model list (whose breakers are capped). */
  openEnded: boolean;
  /** Id of the instance that wrote it. */
  origin: string;
}

/** Longest key accepted from Redis: an upstream name plus a model name, with room to spare. */
const MAX_KEY_LENGTH = 512;

/** A notice read from pub/sub, or undefined when it is malformed. */
export function parseNotice(payload: string): BreakerNotice | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const n = raw as Partial<BreakerNotice>;
  if (typeof n.key !== 'string' || n.key.length > MAX_KEY_LENGTH || n.key.indexOf(':') < 1) return undefined;
  if (n.state !== 'open' && n.state !== 'closed') return undefined;
  if (typeof n.origin !== 'string') return undefined;
  const remainingMs = finiteAtLeast(n.remainingMs, 0);
  const cooldownMs = finiteAtLeast(n.cooldownMs, 1);
  if (remainingMs === undefined || cooldownMs === undefined) return undefined;
  return { key: n.key, state: n.state, remainingMs, cooldownMs, openEnded: n.openEnded === true, origin: n.origin };
}

/**
 * The open state stored under a breaker's key, given the key's remaining time to live in Redis (PTTL).
 * The entry lives exactly as long as the open period, so an expired period is simply absent; an entry
 * without a TTL (-1) or already gone (-2) is not adopted.
 */
export function parseOpenEntry(key: string, value: string | null, pttl: number): BreakerNotice | undefined {
  if (value === null || !(pttl > 0)) return undefined;
  const notice = parseNotice(value);
  if (!notice || notice.key !== key || notice.state !== 'open') return undefined;
  return { ...notice, remainingMs: pttl };
}

function finiteAtLeast(value: unknown, min: number): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= min ? value : undefined;
}
