/**
 * Redis scripts of the background-response store. Each changes one response atomically:
 *
 * - KEYS[1] `bulwark:resp:{id}`: hash `owner`, `status`, `stream` ('1' when its events are logged),
 *   `object` (the response object as JSON; its `status` and `error` are the hash's), `seq` (the last
 *   sequence_number given), `run` (the token of the worker run allowed to write; '' when none),
 *   `stage` (0: no event from a worker yet, 1: `response.in_progress` logged, 2: output logged), `bytes`.
 * - KEYS[2] `bulwark:resp:{id}:events`: a Stream whose entry ids are `0-(sequence_number + 1)`, so that
 *   "the events after N" is one XRANGE from `0-(N + 2)`; fields `t` (event type) and `d` (its JSON).
 * - KEYS[3] `bulwark:resp:counts`: a hash of the responses that reached each final status so far.
 * - KEYS[4], KEYS[5] `bulwark:resp:live:queued`, `…:in_progress`: sorted sets of the responses in that
 *   status now, scored by when their record expires (Redis time), so one that expires unseen stops
 *   counting by itself.
 *
 * Sequence numbers are given here, never by a worker: an event's JSON arrives without its closing brace
 * and the script appends `,"sequence_number":N}`, so numbers stay gapless and unique across worker runs.
 */

/** Shared Lua: appends one event with the next sequence number, then trims the oldest past the bounds. */
const APPEND_EVENT = `
local function append_event(type, prefix, maxEvents, maxBytes)
  local seq = tonumber(redis.call('HGET', KEYS[1], 'seq')) + 1
  local data = prefix .. ',"sequence_number":' .. seq .. '}'
  redis.call('XADD', KEYS[2], '0-' .. (seq + 1), 't', type, 'd', data)
  redis.call('HSET', KEYS[1], 'seq', seq)
  local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', #data)
  local n = redis.call('XLEN', KEYS[2])
  while n > 1 and (n > maxEvents or bytes > maxBytes) do
    local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
    bytes = bytes - #oldest[2][4]
    redis.call('XDEL', KEYS[2], oldest[1])
    n = n - 1
  end
  redis.call('HSET', KEYS[1], 'bytes', bytes)
  return seq
end
local function live(status)
  if status == 'queued' then return KEYS[4] end
  if status == 'in_progress' then return KEYS[5] end
  return nil
end
local function keep(ttl)
  redis.call('PEXPIRE', KEYS[1], ttl)
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ttl) end
  local set = live(redis.call('HGET', KEYS[1], 'status'))
  if set then
    local t = redis.call('TIME')
    redis.call('ZADD', set, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ttl), KEYS[1])
  end
end
local function move(from, to)
  local set = live(from)
  if set then redis.call('ZREM', set, KEYS[1]) end
  if not live(to) then redis.call('HINCRBY', KEYS[3], to, 1) end
end
`;

/** ARGV: owner, object, stream ('1'/'0'), ttl ms, `response.created` event prefix ('' when not logged). 1: created; 0: exists. */
export const CREATE = `${APPEND_EVENT}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'status', 'queued', 'object', ARGV[2], 'stream', ARGV[3], 'seq', -1, 'run', '', 'stage', 0, 'bytes', 0)
if ARGV[5] ~= '' then append_event('response.created', ARGV[5], 1000000, 1073741824) end
keep(ARGV[4])
return 1
`;

/** Undoes a create whose job could not be queued (its caller was refused). */
export const DISCARD = `
redis.call('ZREM', KEYS[4], KEYS[1])
redis.call('ZREM', KEYS[5], KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return 1
`;

/**
 * A worker run starts. ARGV: run token, ttl ms. Answers {status before, seq, stage}; a final status
 * (or 'missing') means there is nothing to run. The new run fences out any earlier one.
 */
export const START = `${APPEND_EVENT}
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', -1, 0} end
if status ~= 'queued' and status ~= 'in_progress' then return {status, -1, 0} end
redis.call('HSET', KEYS[1], 'run', ARGV[1])
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'in_progress')
  move('queued', 'in_progress')
end
keep(ARGV[2])
return {status, tonumber(redis.call('HGET', KEYS[1], 'seq')), tonumber(redis.call('HGET', KEYS[1], 'stage'))}
`;

/** ARGV: run token, type, event prefix, stage, max events, max bytes, ttl ms. The sequence number, or -1 when this run may no longer write. */
export const APPEND = `${APPEND_EVENT}
if redis.call('HGET', KEYS[1], 'status') ~= 'in_progress' or redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] then return -1 end
local seq = append_event(ARGV[2], ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6]))
if tonumber(ARGV[4]) > tonumber(redis.call('HGET', KEYS[1], 'stage')) then redis.call('HSET', KEYS[1], 'stage', ARGV[4]) end
keep(ARGV[7])
return seq
`;

/**
 * Ends a response that is not final yet. ARGV: run token ('*': whoever runs it, as a cancel or a
 * reconcile does), final status, final object, last event type ('' for none), its prefix, max events,
 * max bytes, ttl ms. Answers 'ok', or the status it has already (final, 'missing', or 'fenced' when
 * another run owns it now).
 */
export const FINISH = `${APPEND_EVENT}
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' and status ~= 'in_progress' then return status end
if ARGV[1] ~= '*' and redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] then return 'fenced' end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'object', ARGV[3], 'run', '')
move(status, ARGV[2])
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'stream') == '1' then append_event(ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])) end
keep(ARGV[8])
return 'ok'
`;

/** Drops the live entries whose records have expired; answers {queued, in_progress} now. KEYS[1], KEYS[2]: the live sets. */
export const LIVE_COUNTS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}
`;
