-- Checks a PIN (as HMAC-SHA256 hex) with lockout: after max_failures wrong PINs in a row the
-- card is locked for lock_s seconds; atomic, so parallel guesses cannot exceed the limit.
-- KEYS[1]: card hash.  ARGV: hmac, max failures, lock seconds
-- Returns {0, 0} right | {1, failures so far} wrong | {2, locked until epoch s} | {3, 0} no card
local key = KEYS[1]
local f = redis.call('HMGET', key, 'pin', 'pinfail', 'pinlock')
if not f[1] then return {3, 0} end
local now = tonumber(redis.call('TIME')[1])
local locked = tonumber(f[3] or '0')
if locked > now then return {2, locked} end
if f[1] == ARGV[1] then
  redis.call('HSET', key, 'pinfail', '0', 'pinlock', '0')
  return {0, 0}
end
local fails = redis.call('HINCRBY', key, 'pinfail', 1)
if fails >= tonumber(ARGV[2]) then
  local untils = now + tonumber(ARGV[3])
  redis.call('HSET', key, 'pinfail', '0', 'pinlock', fmt(untils))
  return {2, untils}
end
return {1, fails}
