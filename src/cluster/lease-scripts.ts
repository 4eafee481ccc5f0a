/**
 * The lease rules every instance shares, in Lua. A lease is a member of a Redis sorted set scored with
 * its expiry in epoch ms, stamped from Redis `TIME` (so instances' clocks never disagree about a lease);
 * it is live while its score is in the future. An instance's heartbeat is the same: its id in
 * {@link HEARTBEAT_KEY}, scored with the time it lapses.
 */

/** The ZSET of live instances (member: instance id, score: heartbeat expiry in ms). */
export const HEARTBEAT_KEY = 'bulwark:instances';

/** Lua that sets `now` to Redis time in ms: the one clock of every lease. */
export const REDIS_NOW = `
local redisTime = redis.call('TIME')
local now = tonumber(redisTime[1]) * 1000 + math.floor(tonumber(redisTime[2]) / 1000)
`;

/**
 * Renews an instance's heartbeat and every lease it holds, in one call, and forgets instances whose
 * heartbeat lapsed. KEYS: the heartbeat set, then one lease set per group of leases. ARGV: instance id,
 * heartbeat ms, then per lease set (in KEYS order): ttl ms, reassert (1: a lease that lapsed while its
 * work still runs, as after a long pause, is written back; 0: only a lease still there is extended), the
 * set's own TTL in ms (0: none; the set outlives its longest lease), the number n of members, n members.
 * Returns the number of leases renewed.
 */
export const RENEW_LEASES = `${REDIS_NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local a = 3
local renewed = 0
for k = 2, #KEYS do
  local expiry = now + tonumber(ARGV[a])
  local reassert = ARGV[a + 1] == '1'
  local setTtl = tonumber(ARGV[a + 2])
  local n = tonumber(ARGV[a + 3])
  a = a + 4
  for i = a, a + n - 1 do
    if reassert then redis.call('ZADD', KEYS[k], expiry, ARGV[i]) else redis.call('ZADD', KEYS[k], 'XX', expiry, ARGV[i]) end
  end
  a = a + n
  renewed = renewed + n
  if setTtl > 0 then redis.call('PEXPIRE', KEYS[k], setTtl) end
end
return renewed
`;

/**
 * Forgets an instance at once (a clean shutdown): its heartbeat and the leases it still holds. KEYS: the
 * heartbeat set, then lease sets. ARGV: instance id, then per lease set (in KEYS order) the number n of
 * members and n members.
 */
export const FORGET_INSTANCE = `
redis.call('ZREM', KEYS[1], ARGV[1])
local a = 2
for k = 2, #KEYS do
  local n = tonumber(ARGV[a])
  for i = a + 1, a + n do redis.call('ZREM', KEYS[k], ARGV[i]) end
  a = a + n + 1
end
return 1
`;

/** The live leases of each set in KEYS, by Redis time. Returns one count per key. */
export const COUNT_LIVE = `${REDIS_NOW}
local out = {}
for k = 1, #KEYS do out[k] = redis.call('ZCOUNT', KEYS[k], now, '+inf') end
return out
`;
