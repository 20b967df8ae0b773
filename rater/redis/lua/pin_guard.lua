-- Wrong PINs per caller number, over every card, so one caller cannot sweep many cards
-- (rater/accounts/pin_guard.py). An attempt is counted before its PIN is checked ('begin'),
-- so parallel attempts cannot pass the limit, and taken back when the PIN was right ('undo',
-- which never resets the count: a caller's own card must not buy guesses on others). Every
-- max_failures counted attempts lock the caller for the next length of the schedule, the last
-- one repeating. The hash expires `idle` seconds after its lock ends.
-- KEYS[1]: the caller's hash (fields fail, lock).
-- ARGV: 'begin' | 'undo', max failures, lock schedule ('900,3600,86400'), idle seconds
-- Returns {0, attempts counted} go | {2, locked until epoch s} locked
local key, op = KEYS[1], ARGV[1]
local per, idle = tonumber(ARGV[2]), tonumber(ARGV[4])
local now = tonumber(redis.call('TIME')[1])
if op == 'undo' then
  local fails = redis.call('HINCRBY', key, 'fail', -1)
  if (fails + 1) % per == 0 then redis.call('HSET', key, 'lock', '0') end
  if fails <= 0 then redis.call('DEL', key) end
  return {0, fails}
end
local lock = tonumber(redis.call('HGET', key, 'lock') or '0')
if lock > now then return {2, lock} end
local fails = redis.call('HINCRBY', key, 'fail', 1)
local ttl = idle
if fails % per == 0 then
  local schedule = {}
  for s in string.gmatch(ARGV[3], '%d+') do schedule[#schedule + 1] = tonumber(s) end
  local length = schedule[math.min(fails / per, #schedule)]
  redis.call('HSET', key, 'lock', fmt(now + length))
  ttl = length + idle
end
if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
return {0, fails}
