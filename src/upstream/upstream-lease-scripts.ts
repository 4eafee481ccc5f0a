import { REDIS_NOW } from '../cluster/lease-scripts';

/**
 * Lua scripts of the per-upstream lease sets (`ZSET`, member = attempt id, score = expiry in epoch ms of
 * Redis time, as every lease of the cluster's; renewed by the cluster's lease loop). Each runs atomically
 * in Redis, so a cap holds across every instance.
 */

/**
 * KEYS[1] lease set. ARGV: lease ttl ms, member, cap (0 = none), key TTL ms.
 * Purges lapsed leases, then adds the lease unless the cap is reached. Returns 1 when taken, 0 when full.
 */
export const ACQUIRE_LEASE = `${REDIS_NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local cap = tonumber(ARGV[3])
if cap > 0 and redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`;

/**
 * KEYS[1] lease set. ARGV: member, channel ('' = publish nothing), upstream name.
 * Removes the lease; when it was there and a channel is given, tells waiters that a permit is free.
 */
export const RELEASE_LEASE = `
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 and ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return removed
`;
