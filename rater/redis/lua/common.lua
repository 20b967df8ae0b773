-- Shared by every account script (prepended by rater/redis/scripts.py): the seed's rules
-- applied after a balance changed. Money is integer micro-units; Lua numbers are doubles, exact
-- up to 2^53 micro-units (9 billion EUR), and string.format('%d') keeps big ones out of 1e+15 form.

local function fmt(x) return string.format('%d', x) end

local function split(text, count)
  local out = {}
  if count == 0 then return out end
  for item in string.gmatch(text .. '\n', '([^\n]*)\n') do out[#out + 1] = item end
  return out
end

local function tagof(res) return '{r:' .. res .. '}' end

-- one event in the reseller's stream, and in the list the script returns
local function event(res, kind, level, id, bal, out)
  redis.call('XADD', tagof(res) .. ':events', 'MAXLEN', '~', '100000', '*',
    'type', kind, 'level', level, 'id', id, 'bal', fmt(bal))
  if out then out[#out + 1] = kind .. ':' .. level .. ':' .. id .. ':' .. fmt(bal) end
end

-- A card's balance changed to bal. Below the reseller's ANI threshold the card leaves the ANI
-- index; a top-up back to >= threshold restores it (never for an exhausted card). At or below
-- zero a normal card is empty (active again above zero), a disposable one exhausted for good.
local function settle_card(res, num, bal, threshold, global, out)
  local key = tagof(res) .. ':k:' .. num
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
    local anis = redis.call('SMEMBERS', key .. ':ani')
    if global then
      for _, ani in ipairs(anis) do
        if want == '1' then redis.call('SET', 'ani:' .. ani, num) else redis.call('DEL', 'ani:' .. ani) end
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
  for _, cid in ipairs(redis.call('SMEMBERS', tagof(res) .. ':customers')) do
    local bal = tonumber(redis.call('HGET', tagof(res) .. ':c:' .. cid, 'bal') or '0')
    if bal > 0 then total = total + bal end
  end
  return total
end

local function threshold_of(res)
  return tonumber(redis.call('HGET', tagof(res) .. ':res', 'ani') or '1000000')
end
