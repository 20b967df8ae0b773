-- Reserves credit for one authorized call, atomically on card, customer and reseller, so two
-- calls authorized at once cannot both spend the same money. Expired reservations are dropped
-- here; the debit of the CDR that carries the auth_id releases its own.
-- ARGV: reseller, customer, card ('' none), auth_id, expires (epoch s),
--       amount reseller, amount customer, amount card (micro), via ANI (1|0)
-- Returns {0, ''} reserved | {1, level, available} not enough | {2, level, state} refused
local res, cust, card, auth = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expires = ARGV[5]
local want = {r = tonumber(ARGV[6]), c = tonumber(ARGV[7]), k = tonumber(ARGV[8])}
local via_ani = ARGV[9] == '1'
local tag = tagof(res)
local now = tonumber(redis.call('TIME')[1])

-- live reservations of one account (expired ones removed)
local function reserved(rkey)
  local total = 0
  local flat = redis.call('HGETALL', rkey)
  for i = 1, #flat, 2 do
    local amount, until_s = string.match(flat[i + 1], '^(-?%d+):(%d+)$')
    if tonumber(until_s) <= now then
      redis.call('HDEL', rkey, flat[i])
    else
      total = total + tonumber(amount)
    end
  end
  return total
end

local levels = {{'r', tag .. ':res', res}, {'c', tag .. ':c:' .. cust, cust}}
if card ~= '' then levels[3] = {'k', tag .. ':k:' .. card, card} end
for _, l in ipairs(levels) do
  local code, key, id = l[1], l[2], l[3]
  local f = redis.call('HMGET', key, 'bal', 'st', 'blk', 'exp', 'anion')
  if not f[1] then return {2, code, 'unknown'} end
  if f[3] == '1' then return {2, code, 'blocked'} end
  if f[2] ~= 'active' then return {2, code, f[2]} end
  if code == 'k' then
    local exp = tonumber(f[4] or '0')
    if exp > 0 and exp <= now then return {2, code, 'expired'} end
    if via_ani and f[5] ~= '1' then return {2, code, 'ani_off'} end
  end
  local available = tonumber(f[1]) - reserved(tag .. ':rsv:' .. code .. ':' .. id)
  if want[code] > available then return {1, code, fmt(available)} end
end
for _, l in ipairs(levels) do
  local rkey = tag .. ':rsv:' .. l[1] .. ':' .. l[3]
  redis.call('HSET', rkey, auth, fmt(want[l[1]]) .. ':' .. expires)
  -- the hash outlives its newest reservation by a little, never forever
  local ttl = tonumber(expires) - now + 60
  if redis.call('TTL', rkey) < ttl then redis.call('EXPIRE', rkey, ttl) end
end
return {0, ''}
