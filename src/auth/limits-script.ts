import { Bucket, reserveStep, settleStep } from './token-bucket';

/** One bucket to take units from at admission. */
export interface BucketTake {
  key: string;
  bucket: Bucket;
  cost: number;
}

/** One correction of a bucket by what requests really used (negative: given back). */
export interface BucketSettlement {
  key: string;
  interval: number;
  delta: number;
}

/**
 * One atomic step over a key's buckets (token-bucket.ts): first the settlements this instance owes
 * (real use minus reservation of finished requests), then admission, all or nothing: the request's
 * units are taken from every bucket (requests a minute, tokens a minute, tokens a day) only when each
 * has room, so a refusal costs the key nothing.
 *
 * KEYS = the admission buckets, then the settled ones. ARGV = now (ms), number of admission buckets,
 * number of settlements, then (interval, capacity, cost) per admission bucket, then (interval, delta)
 * per settlement. Returns {index of the first bucket without room (0: admitted), TAT of each admission
 * bucket after the step}. TATs travel as strings with three decimals: Redis would truncate a Lua number
 * to an integer, and milliseconds since the epoch with three decimals stay exact in a double.
 */
export const LIMITS_SCRIPT = `
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
local function stamp(key, tat)
  if tat - now > 0.001 then
    redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(tat - now))
  else
    redis.call('DEL', key)
  end
end
local a = 4 + 3 * n
for j = 1, m do
  local key = KEYS[n + j]
  local tat = math.max(tonumber(redis.call('GET', key) or '0'), now)
  stamp(key, math.max(now, tat + tonumber(ARGV[a + 1]) * tonumber(ARGV[a])))
  a = a + 2
end
local tats = {}
local refused = 0
for i = 1, n do
  local b = 1 + 3 * i
  local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now)
  tats[i] = tat
  if refused == 0 and tat + tonumber(ARGV[b + 2]) * tonumber(ARGV[b]) - now > tonumber(ARGV[b + 1]) + 0.001 then refused = i end
end
local out = {refused}
for i = 1, n do
  local b = 1 + 3 * i
  if refused == 0 then
    tats[i] = tats[i] + tonumber(ARGV[b + 2]) * tonumber(ARGV[b])
    stamp(KEYS[i], tats[i])
  end
  out[i + 1] = string.format('%.3f', tats[i])
end
return out
`;

/** The script's KEYS and ARGV for these takes and settlements at `now`. */
export function limitsScriptArgs(now: number, takes: readonly BucketTake[], settlements: readonly BucketSettlement[]): { keys: string[]; argv: string[] } {
  const keys = [...takes.map((t) => t.key), ...settlements.map((s) => s.key)];
  const argv = [String(now), String(takes.length), String(settlements.length)];
  for (const take of takes) argv.push(String(take.bucket.interval), String(take.bucket.capacity), String(take.cost));
  for (const settlement of settlements) argv.push(String(settlement.interval), String(settlement.delta));
  return { keys, argv };
}

/**
 * The script's step over an in-memory store, with the same arithmetic (token-bucket.ts): the model that
 * tests hold the script to, and a stand-in for Redis in tests of the guards.
 */
export function modelLimitsScript(store: Map<string, number>, now: number, takes: readonly BucketTake[], settlements: readonly BucketSettlement[]): [number, ...string[]] {
  const stamp = (key: string, tat: number) => (tat - now > 0.001 ? store.set(key, Number(tat.toFixed(3))) : store.delete(key));
  for (const s of settlements) stamp(s.key, settleStep(store.get(s.key), now, s, s.delta));
  const steps = takes.map((t) => reserveStep(store.get(t.key), now, t.bucket, t.cost));
  const refused = steps.findIndex((s) => !s.allowed) + 1;
  const tats = steps.map((step, i) => {
    if (refused !== 0) return Math.max(store.get(takes[i].key) ?? 0, now);
    stamp(takes[i].key, step.tat);
    return step.tat;
  });
  return [refused, ...tats.map((tat) => tat.toFixed(3))];
}

/** Reads the script's KEYS and ARGV back (the inverse of {@link limitsScriptArgs}), for stand-ins of Redis in tests. */
export function readLimitsScriptArgs(keys: readonly string[], argv: readonly string[]): { now: number; takes: BucketTake[]; settlements: BucketSettlement[] } {
  const [now, n, m] = argv.slice(0, 3).map(Number);
  const takes = Array.from({ length: n }, (_, i) => {
    const [interval, capacity, cost] = argv.slice(3 + 3 * i, 6 + 3 * i).map(Number);
    return { key: keys[i], bucket: { limit: Math.round(capacity / interval), interval, capacity }, cost };
  });
  const settlements = Array.from({ length: m }, (_, j) => {
    const [interval, delta] = argv.slice(3 + 3 * n + 2 * j, 5 + 3 * n + 2 * j).map(Number);
    return { key: keys[n + j], interval, delta };
  });
  return { now, takes, settlements };
}
