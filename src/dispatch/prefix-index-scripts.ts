/**
 * Lua scripts of the shared prefix index: one hash per block hash (`field` = upstream, value = when it
 * last served the block, epoch ms), each with an expiry, and one sorted set of every block key by last
 * use that bounds how many the index keeps (the oldest go first).
 */

/**
 * KEYS: the chain's block keys, in order, then the candidates' lease sets. ARGV: how many block keys,
 * now (epoch ms). Returns `[found, inFlight]`: each upstream that served a block of the chain and the
 * deepest such block (1-based), flat (`[upstream, depth, …]`), and each lease set's live leases (the
 * candidates' in-flight counts as of now, so the load bound reads fresh figures in the same trip).
 */
export const LOOKUP_PREFIX = `
local blocks = tonumber(ARGV[1])
local depth = {}
local found = {}
local inFlight = {}
for j = blocks + 1, #KEYS do inFlight[#inFlight + 1] = redis.call('ZCOUNT', KEYS[j], ARGV[2], '+inf') end
for i = blocks, 1, -1 do
  local holders = redis.call('HKEYS', KEYS[i])
  for _, upstream in ipairs(holders) do
    if depth[upstream] == nil then
      depth[upstream] = i
      found[#found + 1] = upstream
      found[#found + 1] = i
    end
  end
end
return {found, inFlight}
`;

/**
 * KEYS: the chain's block keys, then the index's last-use set. ARGV: upstream, now (ms), TTL ms, most
 * block keys kept. Marks every block as served by the upstream now, then drops the least recently
 * used blocks beyond the bound.
 */
export const RECORD_PREFIX = `
local lru = KEYS[#KEYS]
for i = 1, #KEYS - 1 do
  redis.call('HSET', KEYS[i], ARGV[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
  redis.call('ZADD', lru, ARGV[2], KEYS[i])
end
local excess = redis.call('ZCARD', lru) - tonumber(ARGV[4])
if excess > 0 then
  local oldest = redis.call('ZPOPMIN', lru, excess)
  for j = 1, #oldest, 2 do redis.call('DEL', oldest[j]) end
end
redis.call('PEXPIRE', lru, ARGV[3])
return 1
`;
