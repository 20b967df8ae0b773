-- Checks a PIN against its HMAC, atomically, so parallel guesses cannot pass the limits.
-- Wrong PINs count until a right one (never reset by a lock). Every max_failures of them lock
-- the card for the next length of the schedule (e.g. 900, 3600, 86400 s); one round more
-- blocks its PIN until `rater card unblock` (pinblk). While locked or blocked even the right
-- PIN is refused and nothing is counted. A right PIN under an earlier key is re-hashed with
-- the current one (docs/REDIS_KEYS.md, "PIN keys").
-- KEYS[1]: card hash.
-- ARGV: max failures per round, lock schedule ('900,3600,86400'), then key id and HMAC of the
--       PIN under every known key, the current key first
-- Returns {0, rehashed 1|0} right | {1, failures} wrong | {2, locked until epoch s}
--         | {3, 0} no card | {4, failures} blocked
local key = KEYS[1]
local f = redis.call('HMGET', key, 'pin', 'pinkey', 'pinfail', 'pinlock', 'pinblk')
if not f[1] then return {3, 0} end
local fails = tonumber(f[3] or '0')
if f[5] == '1' then return {4, fails} end
local now = tonumber(redis.call('TIME')[1])
local locked = tonumber(f[4] or '0')
if locked > now then return {2, locked} end

-- a card written before key ids (no pinkey) is compared under every known key
local stored, kid = f[1], f[2]
local right = false
for i = 3, #ARGV - 1, 2 do
  if (not kid or kid == ARGV[i]) and ARGV[i + 1] == stored then right = true; break end
end
if right then
  local rehash = kid ~= ARGV[3]
  if rehash then
    redis.call('HSET', key, 'pin', ARGV[4], 'pinkey', ARGV[3], 'pinfail', '0', 'pinlock', '0')
  else
    redis.call('HSET', key, 'pinfail', '0', 'pinlock', '0')
  end
  return {0, rehash and 1 or 0}
end

fails = redis.call('HINCRBY', key, 'pinfail', 1)
local per = tonumber(ARGV[1])
if fails % per ~= 0 then return {1, fails} end
local schedule = {}
for s in string.gmatch(ARGV[2], '%d+') do schedule[#schedule + 1] = tonumber(s) end
local round = fails / per
if round > #schedule then
  redis.call('HSET', key, 'pinblk', '1')
  return {4, fails}
end
local untils = now + schedule[round]
redis.call('HSET', key, 'pinlock', fmt(untils))
return {2, untils}
