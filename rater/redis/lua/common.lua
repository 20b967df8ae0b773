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
