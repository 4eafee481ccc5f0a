/**
 * The Lua scripts behind the batch runner's promises. Each runs atomically in Redis and reads time from
 * Redis (`TIME`). Per batch `bulwark:batch:{id}` (hash: the batch and its counters), with:
 *
 * - `…:leases`: ZSET of the lines running now (member: line index, score: lease expiry in ms). A line
 *   whose lease lapsed (its instance died) is started again, up to BATCH_LINE_MAX_STARTS times.
 * - `…:starts`: hash of how many times each line was started.
 * - `…:results`: hash of each line's outcome (index → `o` + output line, `e` + error line, or `x`: given
 *   up). Written once (HSETNX): a line started twice is recorded once.
 * - `…:finalizer`: who builds the output files now (a lock with an expiry).
 *
 * `bulwark:batches:active` (ZSET by creation) lists the batches that are not finished, oldest first.
 */

/** The batch hash of batch `id`, in Lua. */
const BATCH_KEY = `local function batchKey(id) return 'bulwark:batch:' .. id end`;

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/** Whether interactive work of any priority waits: queued, put back and due, or on its way into the queue. */
const INTERACTIVE_WAITS = `
local function interactiveWaits(adding, prioritized, wait, delayed, staleMs, B)
  if redis.call('ZCARD', prioritized) + redis.call('LLEN', wait) + redis.call('ZCOUNT', delayed, '-inf', (now + 1) * 4096 - 1) > 0 then return true end
  for b = 1, 3 do
    if redis.call('ZCOUNT', adding, b * B + now - staleMs, (b + 1) * B - 1) > 0 then return true end
  end
  return false
end
`;

/**
 * Takes an idle global slot and the next line of the oldest batch that has one, in one step. KEYS:
 * slots, adding, prioritized, wait, delayed (the queue core's), active batches, running lines. ARGV:
 * maxConcurrent, slot lease ms, slot lease id, headroom (slots left free), line lease ms, most starts of
 * a line, reservation staleness ms, the band factor of \`adding\` scores, this instance's id.
 * A slot is idle only when every slot in use leaves `headroom` free and no interactive request of any
 * priority waits (queued, put back, or on its way into the queue).
 * Returns {0} (no idle slot or no line), {-1} (interactive work waits), or
 * {1, batch id, line index, starts, line (false when the input file is gone)}.
 */
export const CLAIM_LINE = `${NOW}
${BATCH_KEY}
${INTERACTIVE_WAITS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) + tonumber(ARGV[4]) >= tonumber(ARGV[1]) then return {0} end
if interactiveWaits(KEYS[2], KEYS[3], KEYS[4], KEYS[5], tonumber(ARGV[7]), tonumber(ARGV[8])) then return {-1} end
local maxStarts = tonumber(ARGV[6])
for _, id in ipairs(redis.call('ZRANGE', KEYS[6], 0, 99)) do
  local b = batchKey(id)
  local f = redis.call('HMGET', b, 'status', 'expires_at_ms', 'next', 'total', 'input_file_id')
  if f[1] == 'in_progress' and tonumber(f[2]) > now then
    local leases, results, starts = b .. ':leases', b .. ':results', b .. ':starts'
    local idx = nil
    for _, lapsed in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 16)) do
      if redis.call('HEXISTS', results, lapsed) == 1 then
        redis.call('ZREM', leases, lapsed)
      elseif tonumber(redis.call('HGET', starts, lapsed) or '0') >= maxStarts then
        redis.call('ZREM', leases, lapsed)
        redis.call('HSET', results, lapsed, 'x')
        redis.call('HINCRBY', b, 'failed', 1)
      else
        idx = lapsed
        break
      end
    end
    if not idx then
      local n = tonumber(f[3])
      if n < tonumber(f[4]) then
        idx = tostring(n)
        redis.call('HSET', b, 'next', n + 1)
      end
    end
    if idx then
      redis.call('ZADD', leases, now + tonumber(ARGV[5]), idx)
      local started = redis.call('HINCRBY', starts, idx, 1)
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
      redis.call('ZADD', KEYS[7], now, ARGV[9] .. '|' .. ARGV[3])
      local line = redis.call('LINDEX', 'bulwark:file:' .. f[5] .. ':lines', tonumber(idx))
      return {1, id, tonumber(idx), started, line}
    end
  end
end
return {0}
`;

/**
 * Picks the batch line to stop so that a queued interactive job gets its slot: only while that job still
 * waits in the queue and no slot is free; the line started last (the least work lost) whose slot lease
 * still lives. KEYS: slots, prioritized, running lines. ARGV: maxConcurrent, the job's id.
 * Returns {1, instance id, slot lease} or {0}.
 */
export const PREEMPT_LINE = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then return {0} end
if not redis.call('ZSCORE', KEYS[2], ARGV[2]) then return {0} end
for _ = 1, 32 do
  local top = redis.call('ZPOPMAX', KEYS[3])
  if #top == 0 then return {0} end
  local sep = string.find(top[1], '|', 1, true)
  local lease = string.sub(top[1], sep + 1)
  if redis.call('ZSCORE', KEYS[1], lease) then return {1, string.sub(top[1], 1, sep - 1), lease} end
end
return {0}
`;

/** A line ended (or was stopped): it no longer holds a slot that could be taken back. KEYS: running lines. ARGV: member. */
export const LINE_ENDED = `
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
`;

/**
 * Records a line's outcome once. KEYS: batch hash, results, leases. ARGV: line index, value, counter
 * (`completed` or `failed`). Returns {1, lines done, total} when recorded; {0} when the line was
 * recorded already or the batch no longer takes results (its output is being written or is done).
 */
export const RECORD_LINE = `
local st = redis.call('HGET', KEYS[1], 'status')
if (st ~= 'in_progress' and st ~= 'cancelling') or redis.call('HEXISTS', KEYS[1], 'sealed') == 1 then return {0} end
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return {0} end
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
local f = redis.call('HMGET', KEYS[1], 'completed', 'failed', 'total')
return {1, tonumber(f[1] or '0') + tonumber(f[2] or '0'), tonumber(f[3])}
`;

/**
 * Renews the leases of the lines this instance runs (only those still leased). ARGV: lease ms, then
 * pairs of (batch id, line index). A line whose lease lapsed during a pause keeps running but may run
 * elsewhere too; its outcome is still recorded once.
 */
export const RENEW_LINES = `${NOW}
${BATCH_KEY}
for i = 2, #ARGV - 1, 2 do
  redis.call('ZADD', batchKey(ARGV[i]) .. ':leases', 'XX', now + tonumber(ARGV[1]), ARGV[i + 1])
end
return 1
`;

/**
 * Gives lines back at once (shutdown, or stopped for interactive work): their leases lapse now, so any
 * instance starts them again. ARGV: 1 when the stopped start does not count against the line's most
 * starts (it was stopped on purpose), then pairs of (batch id, line index).
 */
export const HAND_BACK_LINES = `
${BATCH_KEY}
for i = 2, #ARGV - 1, 2 do
  if redis.call('ZADD', batchKey(ARGV[i]) .. ':leases', 'XX', 'CH', 0, ARGV[i + 1]) == 1 and ARGV[1] == '1' then
    redis.call('HINCRBY', batchKey(ARGV[i]) .. ':starts', ARGV[i + 1], -1)
  end
end
return 1
`;

/**
 * Stops a batch: no new line starts; it ends \`cancelled\` once its running lines are done. KEYS: batch
 * hash, batches by status. ARGV: now (s). Returns the status it had.
 */
export const CANCEL_BATCH = `
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'in_progress' or st == 'validating' then
  redis.call('HSET', KEYS[1], 'status', 'cancelling', 'cancelling_at', ARGV[1])
  redis.call('HINCRBY', KEYS[2], st, -1)
  redis.call('HINCRBY', KEYS[2], 'cancelling', 1)
end
return st or ''
`;

/**
 * Starts writing a batch's output when it may end: all lines done (→ completed), cancelling with no
 * line running (→ cancelled), or past its window with no line running (→ expired). From then on no
 * result is taken. A batch sealed already is taken over when its finalizer's lock lapsed. KEYS: batch
 * hash, leases, finalizer lock, batches by status. ARGV: finalizer id, lock ms.
 * Returns {1, ending} when the caller writes the output now, else {0}.
 */
export const SEAL_BATCH = `${NOW}
local f = redis.call('HMGET', KEYS[1], 'status', 'total', 'completed', 'failed', 'expires_at_ms', 'sealed', 'ending')
local st = f[1]
if not st then return {0} end
local ending
if f[6] then
  if redis.call('EXISTS', KEYS[3]) == 1 or (st ~= 'finalizing' and st ~= 'cancelling') then return {0} end
  ending = f[7]
else
  local running = redis.call('ZCOUNT', KEYS[2], now, '+inf')
  if st == 'in_progress' and tonumber(f[3] or '0') + tonumber(f[4] or '0') >= tonumber(f[2]) then ending = 'completed'
  elseif st == 'cancelling' and running == 0 then ending = 'cancelled'
  elseif st == 'in_progress' and now >= tonumber(f[5]) and running == 0 then ending = 'expired'
  else return {0} end
  redis.call('HSET', KEYS[1], 'sealed', '1', 'ending', ending)
  if st == 'in_progress' then
    redis.call('HSET', KEYS[1], 'status', 'finalizing', 'finalizing_at', math.floor(now / 1000))
    redis.call('HINCRBY', KEYS[4], 'in_progress', -1)
    redis.call('HINCRBY', KEYS[4], 'finalizing', 1)
  end
end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
return {1, ending}
`;

/**
 * Ends a sealed batch once its files are written, if the caller still holds the finalizer lock.
 * KEYS: batch hash, results, leases, starts, finalizer lock, active batches, batches by status.
 * ARGV: finalizer id, now (s), output file id or '', error file id or '', lines failed by the ending
 * itself (expired), batch id. Returns 1 when ended.
 */
export const END_BATCH = `
if redis.call('GET', KEYS[5]) ~= ARGV[1] then return 0 end
local f = redis.call('HMGET', KEYS[1], 'status', 'ending')
local st, ending = f[1], f[2]
redis.call('HSET', KEYS[1], 'status', ending, ending .. '_at', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'output_file_id', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error_file_id', ARGV[4]) end
if tonumber(ARGV[5]) > 0 then redis.call('HINCRBY', KEYS[1], 'failed', tonumber(ARGV[5])) end
redis.call('HINCRBY', KEYS[7], st, -1)
redis.call('HINCRBY', KEYS[7], ending, 1)
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[6], ARGV[6])
return 1
`;
