/**
 * The Lua scripts behind the queue core's cross-instance promises. Each runs atomically in Redis, reads
 * time from Redis itself (`TIME`, so instances' clocks never disagree about a lease) and touches only:
 *
 * - `slots`: ZSET of running requests' leases (member: lease id, score: expiry in ms). Its size after
 *   purging expired members is the number of upstream calls in flight across every instance.
 * - `adding`: ZSET of queue places reserved by an add still on its way into BullMQ (member: job id,
 *   score: band * BAND + reservation time), so a burst of adds cannot overshoot the bound.
 * - BullMQ's own `prioritized` ZSET (score: priority * 2^32 + FIFO counter) and `wait` list: the truth
 *   of what waits.
 * - `instances`: the cluster's ZSET of live instances (member: instance id, score: heartbeat expiry),
 *   renewed with every lease by the cluster's lease loop (cluster/lease-scripts.ts).
 * - `commit:{id}`: a queued job may run only while it exists (see ADMIT and COMMIT).
 * - `priced`: HASH of the waiting requests' expected service time per band (`ms:<band>`) and how many of
 *   them carry an estimate (`n:<band>`); `priced:job` holds each waiting job's `<band>:<ms>`. So the wait
 *   estimate of every instance prices what waits by its own size, not by an average.
 *
 * Priority bands are BullMQ priorities 1 (high), 2 (normal), 3 (low); lower runs first.
 */

import { FAIR_RANGE } from './inference-job';

/** Scores of `adding` carry the band in the high digits: band * BAND + epoch ms. */
export const BAND = 1e13;
/** A reservation older than this without its job is an add that never landed. */
export const STALE_RESERVATION_MS = 30_000;

/**
 * Reservations (KEYS[2]) whose job has not landed in BullMQ yet: once it has, the job counts where it
 * waits, not twice. Every script that counts them takes BullMQ's job key prefix (\`queue.toKey('')\`)
 * as its last argument.
 */
const PENDING_ADDS = `
local jobPrefix = ARGV[#ARGV]
local function pendingAdds(lo, hi)
  local n = 0
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], lo, hi)) do
    if redis.call('EXISTS', jobPrefix .. id) == 0 then n = n + 1 end
  end
  return n
end
`;

const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local BAND = ${BAND}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local R = ${FAIR_RANGE}
${PENDING_ADDS}
local function bandTop(b) return (b * R + 1) * 4294967296 - 1 end
local function bandBottom(b) return ((b - 1) * R + 1) * 4294967296 end
local function waitingUpTo(band)
  return redis.call('ZCOUNT', KEYS[3], '-inf', bandTop(band))
    + redis.call('LLEN', KEYS[4])
    + pendingAdds('-inf', (band + 1) * BAND - 1)
end
-- Jobs a worker put back for a while (their key at its concurrency cap): BullMQ's delayed ZSET, score
-- timestamp * 4096 + counter. All of them count against the queue bound; the due ones can be taken.
local function delayedCount(key) return redis.call('ZCARD', key) end
local function dueDelayed(key) return redis.call('ZCOUNT', key, '-inf', (now + 1) * 4096 - 1) end
local function waitingIn(band)
  return redis.call('ZCOUNT', KEYS[3], bandBottom(band), bandTop(band))
    + pendingAdds(band * BAND, (band + 1) * BAND - 1)
end
`;

/** Takes a waiting job out of its key's count and the priced sums. */
const FORGET_WAITING = `
local function forgetWaiting(keyWaiting, jobKey, priced, pricedJob, id)
  local client = redis.call('HGET', jobKey, id)
  if client then
    redis.call('HDEL', jobKey, id)
    if redis.call('HINCRBY', keyWaiting, client, -1) <= 0 then redis.call('HDEL', keyWaiting, client) end
  end
  local price = redis.call('HGET', pricedJob, id)
  if price then
    redis.call('HDEL', pricedJob, id)
    local sep = string.find(price, ':', 1, true)
    local b = string.sub(price, 1, sep - 1)
    if redis.call('HINCRBY', priced, 'ms:' .. b, -tonumber(string.sub(price, sep + 1))) < 0 then redis.call('HSET', priced, 'ms:' .. b, 0) end
    if redis.call('HINCRBY', priced, 'n:' .. b, -1) < 0 then redis.call('HSET', priced, 'n:' .. b, 0) end
  end
end
`;

/**
 * Admission and enqueue as one step. KEYS: slots, adding, prioritized, wait, job hash, commit key, the
 * band's fair-share hash, waiting per client key (hash), client key per waiting job (hash), delayed,
 * the client key's running leases, priced, priced:job.
 * ARGV: band, id, maxQueue, maxConcurrent, leaseMs, fastLaneAllowed (1/0), commitWindowMs, client key,
 * cost (fair-share units of one request of this key: inversely proportional to its weight), the key's
 * cap on waiting requests (0: none), the key's cap on running requests (0: none), whether the job may
 * exist already (1: an Idempotency-Key's id; 0: a fresh id, no need to look), its expected service
 * ms ('' when unknown).
 * Returns [kind, figure, tag]: kind 1 = fast lane (a lease `id` is held; figure = slots in use), 2 = a
 * queue place is reserved (figure = free slots now, tag = its fair-share start tag), 0 = queue full
 * (figure = waiting), 3 = the job exists already, 4 = the key holds its share of the queue (figure = its
 * waiting requests).
 * A reserved job may run only while its commit key lives: it lapses (Redis time) unless the caller
 * confirms the add in time, so an add that lands after its caller gave up never runs.
 * Fair share (start-time fair queuing): a job's tag is max(virtual time, the key's last finish tag);
 * the key's finish tag moves on by its cost; the virtual time is the tag of the last job started
 * (BIND). A band with nothing waiting starts its clock afresh.
 */
export const ADMIT = `${PRELUDE}
if ARGV[12] == '1' and redis.call('EXISTS', KEYS[5]) == 1 then return {3, 0, 0} end
local band = tonumber(ARGV[1])
local maxConcurrent = tonumber(ARGV[4])
local inUse = redis.call('ZCARD', KEYS[1])
local keyRunCap = tonumber(ARGV[11])
local keyFree = true
if keyRunCap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', now)
  keyFree = redis.call('ZCARD', KEYS[11]) < keyRunCap
end
if ARGV[6] == '1' and keyFree and inUse < maxConcurrent and waitingUpTo(band) == 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[2])
  if keyRunCap > 0 then redis.call('ZADD', KEYS[11], now + tonumber(ARGV[5]), ARGV[2]) end
  return {1, inUse + 1, 0}
end
local waiting = waitingUpTo(3) + delayedCount(KEYS[10])
if waiting >= tonumber(ARGV[3]) then return {0, waiting, 0} end
local client = ARGV[8]
local keyCap = tonumber(ARGV[10])
local keyWaiting = tonumber(redis.call('HGET', KEYS[8], client) or '0')
if keyCap > 0 and keyWaiting >= keyCap then return {4, keyWaiting, 0} end
if waitingIn(band) == 0 then redis.call('DEL', KEYS[7]) end
local v = tonumber(redis.call('HGET', KEYS[7], '_v') or '0')
local tag = math.max(v, tonumber(redis.call('HGET', KEYS[7], client) or '0'))
redis.call('HSET', KEYS[7], client, tag + tonumber(ARGV[9]))
redis.call('HINCRBY', KEYS[8], client, 1)
redis.call('HSET', KEYS[9], ARGV[2], client)
if ARGV[13] ~= '' then
  local ms = math.floor(tonumber(ARGV[13]))
  redis.call('HINCRBY', KEYS[12], 'ms:' .. band, ms)
  redis.call('HINCRBY', KEYS[12], 'n:' .. band, 1)
  redis.call('HSET', KEYS[13], ARGV[2], band .. ':' .. ms)
end
redis.call('ZADD', KEYS[2], band * BAND + now, ARGV[2])
redis.call('SET', KEYS[6], '1', 'PX', ARGV[7])
return {2, maxConcurrent - inUse, tag}
`;

/**
 * A job left the queue before it started (cancelled, its caller gone, its add failed): its reservation,
 * its place in its key's count, its price and its commit go. KEYS: waiting per key, key per job, adding,
 * priced, priced:job, commit key. ARGV: id.
 */
export const FORGET = `${FORGET_WAITING}
forgetWaiting(KEYS[1], KEYS[2], KEYS[4], KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
-- Its caller was told it failed: should its add still land, the job never runs.
redis.call('DEL', KEYS[6])
return 1
`;

/**
 * A worker asks for a slot to run the head of the queue. KEYS: slots, adding, prioritized, wait, delayed.
 * ARGV: ticket, maxConcurrent, leaseMs. Returns 1 (granted: lease `ticket` held), 0 (no free slot),
 * -1 (nothing waits).
 */
export const CLAIM = `${PRELUDE}
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
if redis.call('ZCARD', KEYS[3]) + redis.call('LLEN', KEYS[4]) + dueDelayed(KEYS[5]) == 0 then return -1 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
`;

/**
 * Gives a slot back, and hands it straight to the queue's head when something waits. KEYS: slots,
 * adding, prioritized, wait, delayed, the client key's running leases. ARGV: lease, nextTicket ('' = no
 * hand-off), maxConcurrent, leaseMs, whether the lease counts against its key (1/0).
 * Returns [handedOff 1/0, waiting].
 */
export const RELEASE = `${PRELUDE}
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[5] == '1' then redis.call('ZREM', KEYS[6], ARGV[1]) end
local waiting = redis.call('ZCARD', KEYS[3]) + redis.call('LLEN', KEYS[4]) + dueDelayed(KEYS[5])
if waiting > 0 and ARGV[2] ~= '' and redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[2])
  return {1, waiting}
end
return {0, waiting}
`;

/**
 * A worker took job `id` out of BullMQ: its reservation (if still there) and its place in its key's
 * count are gone, its band's virtual time moves to its tag, and the worker learns whether the job may
 * run. KEYS: waiting per key, key per job, adding, commit key, instances, the band's fair-share hash,
 * the client key's running leases, priced, priced:job. ARGV: id, origin instance (or ''), fair-share tag, the key's cap on
 * running requests (0: none), the worker's lease, leaseMs.
 * Returns [committed 1/0, origin alive 1/0, key at its cap 1/0]; a job whose key is at its cap is left
 * as it was (still waiting, for the worker to put back for a moment).
 */
export const BIND = `${FORGET_WAITING}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keyRunCap = tonumber(ARGV[4])
if keyRunCap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now)
  if redis.call('ZCARD', KEYS[7]) >= keyRunCap then return {1, 1, 1} end
  redis.call('ZADD', KEYS[7], now + tonumber(ARGV[6]), ARGV[5])
end
forgetWaiting(KEYS[1], KEYS[2], KEYS[8], KEYS[9], ARGV[1])
local fair = KEYS[6]
local tag = tonumber(ARGV[3])
if tag > tonumber(redis.call('HGET', fair, '_v') or '0') then redis.call('HSET', fair, '_v', tag) end
redis.call('ZREM', KEYS[3], ARGV[1])
local alive = 1
if ARGV[2] ~= '' then
  local expiry = redis.call('ZSCORE', KEYS[5], ARGV[2])
  if not expiry or tonumber(expiry) < now then alive = 0 end
end
return {redis.call('EXISTS', KEYS[4]), alive, 0}
`;

/**
 * The caller's add landed in time: the job may run until `ttlMs` from now. KEYS: adding, commit key, the
 * job's hash. ARGV: id, ttlMs. Returns 1, 0 when the commit window had lapsed (the job must not run), or
 * -1 when the job is not there (yet): nothing is changed then.
 */
export const COMMIT = `
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('PEXPIRE', KEYS[2], ARGV[2])
`;

/**
 * The queue's figures in one read. KEYS: slots, adding, prioritized, wait, waiting per key, delayed,
 * priced. Returns [waiting high, normal, low, slots in use, put back (delayed), then per band its
 * priced ms and priced count, then key1, n1, …].
 */
export const FIGURES = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local BAND = ${BAND}
local R = ${FAIR_RANGE}
${PENDING_ADDS}
local out = {}
-- Reservations whose add never landed (its instance died between the two steps) are forgotten here,
-- on the figures' 200 ms tick, rather than on every request's path; until then they only over-count.
for b = 1, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[2], b * BAND, b * BAND + now - ${STALE_RESERVATION_MS})
end
for b = 1, 3 do
  local queued = redis.call('ZCOUNT', KEYS[3], ((b - 1) * R + 1) * 4294967296, (b * R + 1) * 4294967296 - 1)
  local adding = pendingAdds(b * BAND + now - ${STALE_RESERVATION_MS}, (b + 1) * BAND - 1)
  out[b] = queued + adding
end
out[1] = out[1] + redis.call('LLEN', KEYS[4])
out[4] = redis.call('ZCOUNT', KEYS[1], now, '+inf')
out[5] = redis.call('ZCARD', KEYS[6])
for b = 1, 3 do
  -- A band with nothing waiting has nothing priced: sums that drifted (an add that never landed) start afresh.
  if out[b] == 0 and out[5] == 0 then redis.call('HDEL', KEYS[7], 'ms:' .. b, 'n:' .. b) end
  local priced = redis.call('HMGET', KEYS[7], 'ms:' .. b, 'n:' .. b)
  out[4 + 2 * b] = tonumber(priced[1] or '0')
  out[5 + 2 * b] = tonumber(priced[2] or '0')
end
local perKey = redis.call('HGETALL', KEYS[5])
for i = 1, #perKey do out[11 + i] = perKey[i] end
return out
`;
