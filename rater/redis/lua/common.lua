-- Shared by every account script, after the generated header (rater/redis/scripts.py): the
-- notice's rules applied after a balance changed. Money is integer micro-units; Lua numbers are
-- doubles, exact up to 2^53 micro-units (MAX_AMOUNT, about 9 billion EUR), and
-- string.format('%d') keeps big ones out of 1e+15 form. Balances change only with HINCRBY.

local function fmt(x) return string.format('%d', x) end

-- the strings of contract.pack_strings: count, each length (INDEX each), then the bytes
local function unpack_strings(blob)
  local out = {}
  if #blob == 0 then return out end
  local n = struct.unpack(INDEX.FMT, blob, 1)
  local pos = 1 + INDEX.SIZE * (n + 1)
  for i = 1, n do
    local len = struct.unpack(INDEX.FMT, blob, 1 + INDEX.SIZE * i)
    out[i] = string.sub(blob, pos, pos + len - 1)
    pos = pos + len
  end
  return out
end

-- one event in the reseller's stream, and in the list the script returns
local function event(res, kind, level, id, bal, out)
  redis.call('XADD', K.events(res), 'MAXLEN', '~', '100000', '*',
    'type', kind, 'level', level, 'id', id, 'bal', fmt(bal))
  if out then out[#out + 1] = kind .. ':' .. level .. ':' .. id .. ':' .. fmt(bal) end
end

-- A card's balance changed to bal. Below the reseller's ANI threshold the card leaves the ANI
-- index; a top-up back to >= threshold restores it (never for an exhausted card). At or below
-- zero a normal card is empty (active again above zero), a disposable one exhausted for good.
-- `global`: one server, the ANI index (other slots) is kept here; on Redis Cluster the caller
-- brings it in line with `anion` after the script (rater/redis/topology.py).
local function settle_card(res, num, bal, threshold, global, out)
  local key = K.card(res, num)
  local f = redis.call('HMGET', key, 'st', 'disp', 'anion')
  local st, disp, anion = f[1], f[2], f[3]
  if not st then return end
  if bal <= 0 and st == 'active' then
    st = (disp == '1') and 'exhausted' or 'empty'
    redis.call('HSET', key, 'st', st)
    event(res, 'card_' .. st, 'card', num, bal, out)
  elseif bal > 0 and st == 'empty' then
    st = 'active'
    redis.call('HSET', key, 'st', st)
    event(res, 'card_active', 'card', num, bal, out)
  end
  local want = (bal >= threshold and st ~= 'exhausted') and '1' or '0'
  if want ~= anion then
    redis.call('HSET', key, 'anion', want)
    local anis = redis.call('SMEMBERS', K.card_anis(res, num))
    if global then
      for _, ani in ipairs(anis) do
        if want == '1' then
          redis.call('SET', K.ani_index(ani), num)
        else
          redis.call('DEL', K.ani_index(ani))
        end
      end
    end
    if #anis > 0 then event(res, want == '1' and 'ani_on' or 'ani_off', 'card', num, bal, out) end
  end
end

-- A customer's or reseller's balance changed: below zero it is blocked for new calls
-- ('negative', which also stops its cards, or everything under a reseller); back at >= 0 active.
local function settle_party(res, key, level, id, bal, out)
  local st = redis.call('HGET', key, 'st')
  if bal < 0 and st == 'active' then
    redis.call('HSET', key, 'st', 'negative')
    event(res, level .. '_negative', level, id, bal, out)
  elseif bal >= 0 and st == 'negative' then
    redis.call('HSET', key, 'st', 'active')
    event(res, level .. '_active', level, id, bal, out)
  end
end

-- Sum of the positive balances of a reseller's customers (what its credit must cover), and the
-- balances of its normal cards (shown, not added).
local function coverage_total(res)
  local total = 0
  for _, cid in ipairs(redis.call('SMEMBERS', K.customers_of(res))) do
    local bal = tonumber(redis.call('HGET', K.customer(res, cid), 'bal') or '0')
    if bal > 0 then total = total + bal end
  end
  return total
end

local function threshold_of(res)
  return tonumber(redis.call('HGET', K.reseller(res), 'ani') or '1000000')
end

-- true when bal - amount stays within +-MAX_AMOUNT. Both are integers of at most 2^53 in
-- magnitude; a double rounds monotonically, so a result beyond the bound stays beyond it.
local function within(bal, amount)
  local after = bal - amount
  return after >= -MAX_AMOUNT and after <= MAX_AMOUNT
end

-- Reservations of one account (docs/REDIS_KEYS.md, "Authorization"): the entries auth_id ->
-- '<micro>:<expires epoch s>' (K.reservations), the same auth_ids scored by expiry
-- (K.reservation_expiry) and their running sum and count (K.reservation_totals: held, calls).
-- Every change goes through the functions below, so the totals stay the exact sum of the
-- entries and no script reads every live reservation of an account. The three keys expire
-- together, a minute after the newest entry: totals never outlive the entries they sum (and
-- whoever deletes reservations by hand deletes the three keys).
local function rsv_keys(res, level, id)
  return K.reservations(res, level, id), K.reservation_expiry(res, level, id),
    K.reservation_totals(res, level, id)
end

-- entries written before the totals existed are indexed and summed once, on first touch
-- (called when the totals are missing: then either there are no entries, or old ones)
local function rsv_upgrade(h, z, s)
  if redis.call('EXISTS', h) == 0 then return end
  local flat = redis.call('HGETALL', h)
  local held, calls = 0, 0
  for i = 1, #flat, 2 do
    local amount, until_s = string.match(flat[i + 1], '^(-?%d+):(%d+)$')
    if amount then
      redis.call('ZADD', z, until_s, flat[i])
      held, calls = held + tonumber(amount), calls + 1
    end
  end
  if calls == 0 then return end
  redis.call('HSET', s, 'held', fmt(held), 'calls', calls)
  local ttl = redis.call('PTTL', h)
  if ttl > 0 then
    redis.call('PEXPIRE', z, ttl)
    redis.call('PEXPIRE', s, ttl)
  end
end

-- drop one entry; the amount it held, or nil when there was none
local function rsv_drop(h, z, s, auth)
  local value = redis.call('HGET', h, auth)
  if not value then
    redis.call('ZREM', z, auth)  -- an index entry without its reservation: nothing to sum
    return nil
  end
  local amount = tonumber(string.match(value, '^(-?%d+):') or '0')
  redis.call('HDEL', h, auth)
  redis.call('ZREM', z, auth)
  if redis.call('HINCRBY', s, 'calls', -1) <= 0 then
    redis.call('DEL', h, z, s)  -- the last one: nothing left to sum
  else
    redis.call('HINCRBY', s, 'held', -amount)
  end
  return amount
end

-- the live sum and count of one account's reservations, expired entries dropped first
local function rsv_live(h, z, s, now)
  local t = redis.call('HMGET', s, 'held', 'calls')
  if not t[2] then
    rsv_upgrade(h, z, s)
    t = redis.call('HMGET', s, 'held', 'calls')
  end
  local held, calls = tonumber(t[1] or '0'), tonumber(t[2] or '0')
  for _, auth in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now)) do
    local amount = rsv_drop(h, z, s, auth)
    if amount then held, calls = held - amount, calls - 1 end
  end
  return held, calls
end

-- add an entry (fresh: a new auth_id), or replace it (a renewal): the totals follow; the
-- keys live a minute past the newest entry
local function rsv_put(h, z, s, auth, amount, expires, now, fresh)
  local before = (not fresh) and redis.call('HGET', h, auth)
  if before then
    redis.call('HINCRBY', s, 'held', amount - tonumber(string.match(before, '^(-?%d+):')))
  else
    redis.call('HINCRBY', s, 'held', amount)
    redis.call('HINCRBY', s, 'calls', 1)
  end
  redis.call('HSET', h, auth, fmt(amount) .. ':' .. fmt(expires))
  redis.call('ZADD', z, expires, auth)
  local keep = math.max(redis.call('TTL', h), expires - now + 60)
  redis.call('EXPIRE', h, keep)
  redis.call('EXPIRE', z, keep)
  redis.call('EXPIRE', s, keep)
end

-- the debit of a CDR carrying auth_id, or a release: that call holds nothing any more
local function rsv_release(res, level, id, auth)
  local h, z, s = rsv_keys(res, level, id)
  if redis.call('EXISTS', s) == 0 then rsv_upgrade(h, z, s) end
  return rsv_drop(h, z, s, auth)
end
