-- Reservations of authorized calls, atomically on card, customer and reseller, so two calls
-- authorized at once cannot both spend the same money (docs/REDIS_KEYS.md, "Authorization").
-- Times are the server's (TIME): a reservation lives `ttl` seconds from now, whatever time the
-- call is rated at. Each account's live reservations are kept with their running sum and count
-- (rsv_* in common.lua): a call reads three numbers per account, never the reservations
-- themselves, and drops only the expired ones. The debit of the CDR that carries the auth_id
-- releases its reservation (debit.lua).
--   K.reservations(R, level, id)        hash auth_id -> '<micro>:<expires epoch s>'
--   K.reservation_expiry(R, level, id)  sorted set auth_id by expiry
--   K.reservation_totals(R, level, id)  hash held, calls
--   K.auth_record(R, auth_id)           hash cust, card, ani, num, at, start, exp, secs, r, c, k
--   K.auth_index(auth_id)               the reseller (global: written here on one server only)
--
-- ARGV[1] = 'reserve': reseller, customer, card ('' none), auth_id, ttl (s), amount reseller,
--   amount customer, amount card (micro), via ANI (1|0), seconds granted, most calls per card,
--   most calls per customer, number (E.164 digits), rated at (epoch s), global (1|0)
--   Returns {0, expires} | {1, level, available} not enough | {2, level, state} refused
--           | {3, level, calls} too many calls
-- ARGV[1] = 'renew': reseller, auth_id, ttl (s), ring (s), seconds granted in all, the seconds
--   granted so far (as read), amount reseller, customer, card (micro, in all), global (1|0)
--   Returns {0, expires} | {1, level, available} | {2, level, state}
--           | {4, 'unknown'|'expired'|'ended'} | {5, most seconds allowed} | {6, seconds now}
-- ARGV[1] = 'release': reseller, auth_id, global (1|0)
--   Returns {0, 1 when credit was held, else 0}
-- global = 1 (one server): the script also keeps the global auth index; on Redis Cluster the
-- caller does (rater/accounts/reservations.py).
local op, res = ARGV[1], ARGV[2]
local tag = tagof(res)
local now = tonumber(redis.call('TIME')[1])

local function levels_of(cust, card)
  local levels = {{'r', tag .. ':res', res}, {'c', tag .. ':c:' .. cust, cust}}
  if card ~= '' then levels[3] = {'k', tag .. ':k:' .. card, card} end
  return levels
end

-- {2, level, state} when an account may not call now, else nil and its balance
local function refusal(level, key, via_ani)
  local f = redis.call('HMGET', key, 'bal', 'st', 'blk', 'exp', 'anion')
  if not f[1] then return {2, level, 'unknown'} end
  if f[3] == '1' then return {2, level, 'blocked'} end
  if f[2] ~= 'active' then return {2, level, f[2]} end
  if level == 'k' then
    local exp = tonumber(f[4] or '0')
    if exp > 0 and exp <= now then return {2, level, 'expired'} end
    if via_ani and f[5] ~= '1' then return {2, level, 'ani_off'} end
  end
  return nil, tonumber(f[1])
end

local function hold(levels, auth, want, expires, fresh)
  for _, l in ipairs(levels) do
    local h, z, s = rsv_keys(res, l[1], l[3])
    rsv_put(h, z, s, auth, want[l[1]], expires, now, fresh)
  end
end

if op == 'reserve' then
  local cust, card, auth, ttl = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
  local want = {r = tonumber(ARGV[7]), c = tonumber(ARGV[8]), k = tonumber(ARGV[9])}
  local via_ani = ARGV[10] == '1'
  local most = {k = tonumber(ARGV[12]), c = tonumber(ARGV[13])}
  local levels = levels_of(cust, card)
  for _, l in ipairs(levels) do
    local bad, balance = refusal(l[1], l[2], via_ani)
    if bad then return bad end
    local h, z, s = rsv_keys(res, l[1], l[3])
    local held, calls = rsv_live(h, z, s, now)
    if most[l[1]] and calls >= most[l[1]] then return {3, l[1], calls} end
    if want[l[1]] > balance - held then return {1, l[1], fmt(balance - held)} end
  end
  local expires = now + ttl
  hold(levels, auth, want, expires, true)
  local record = tag .. ':auth:' .. auth
  redis.call('HSET', record, 'cust', cust, 'card', card, 'ani', ARGV[10], 'num', ARGV[14],
    'at', ARGV[15], 'start', fmt(now), 'exp', fmt(expires), 'secs', ARGV[11],
    'r', fmt(want.r), 'c', fmt(want.c), 'k', fmt(want.k))
  redis.call('EXPIRE', record, ttl + 60)
  if ARGV[16] == '1' then redis.call('SET', K.auth_index(auth), res, 'EX', ttl + 60) end
  return {0, expires}
end

if op == 'renew' then
  local auth, ttl, ring = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  local record = tag .. ':auth:' .. auth
  local rec = redis.call('HMGET', record, 'cust', 'card', 'ani', 'start', 'exp', 'secs')
  if not rec[1] then return {4, 'unknown'} end
  if tonumber(rec[5]) <= now then return {4, 'expired'} end
  -- debited (the CDR came) or released
  if redis.call('HEXISTS', K.reservations(res, 'r', res), auth) == 0 then return {4, 'ended'} end
  if rec[6] ~= ARGV[7] then return {6, rec[6]} end
  local cap = now - tonumber(rec[4]) + ttl - ring
  if tonumber(ARGV[6]) > cap then return {5, fmt(cap)} end
  local want = {r = tonumber(ARGV[8]), c = tonumber(ARGV[9]), k = tonumber(ARGV[10])}
  local levels = levels_of(rec[1], rec[2])
  for _, l in ipairs(levels) do
    local bad, balance = refusal(l[1], l[2], rec[3] == '1')
    if bad then return bad end
    local h, z, s = rsv_keys(res, l[1], l[3])
    local held = rsv_live(h, z, s, now)
    -- what this reservation holds already is its own to keep
    local mine = redis.call('HGET', h, auth)
    if mine then held = held - tonumber(string.match(mine, '^(-?%d+):')) end
    if want[l[1]] > balance - held then return {1, l[1], fmt(balance - held)} end
  end
  local expires = now + ttl
  hold(levels, auth, want, expires, false)
  redis.call('HSET', record, 'exp', fmt(expires), 'secs', ARGV[6],
    'r', fmt(want.r), 'c', fmt(want.c), 'k', fmt(want.k))
  redis.call('EXPIRE', record, ttl + 60)
  if ARGV[11] == '1' then redis.call('EXPIRE', K.auth_index(auth), ttl + 60) end
  return {0, expires}
end

if op == 'release' then
  local auth = ARGV[3]
  local record = tag .. ':auth:' .. auth
  local rec = redis.call('HMGET', record, 'cust', 'card')
  local held = rsv_release(res, 'r', res, auth) and 1 or 0
  if rec[1] then
    rsv_release(res, 'c', rec[1], auth)
    if rec[2] ~= '' then rsv_release(res, 'k', rec[2], auth) end
  end
  redis.call('DEL', record)
  if ARGV[4] == '1' then redis.call('DEL', K.auth_index(auth)) end
  return {0, held}
end

return redis.error_reply('reserve: unknown operation ' .. tostring(op))
