-- Applies one batch of CDRs of one (topic identity, partition): one call per batch.
-- (rater/pipeline/debit.py documents the arguments and the outcome codes; docs/REDIS_KEYS.md the keys.)
--
-- De-duplication records live in time buckets: hash `{r:R}:d:<bucket>` (bucket = now / window)
-- with field '<switch>:<cdr_id>' and a 20-byte value (topic token, partition, offset, outcome,
-- blocked). A CDR is looked up in the current and the previous bucket, so every record is kept
-- at least one window (at most two). Records are read with one HMGET per bucket and written
-- with one HSET per bucket for the whole batch: per-key SET NX EX cost about 4x more per CDR.
--
-- For each CDR, in offset order:
--  * offset <= its reseller's watermark: a replay. Nothing changes; the outcome is read back
--    from the record (same message identity -> the outcome it got; another identity -> it was
--    a DUPLICATE; no record -> REPLAY_EXPIRED).
--  * a record exists (or an earlier CDR of this batch had the same identity): DUPLICATE (or,
--    with the same message identity, a replay beyond a lost watermark: its first outcome).
--  * else APPLIED: card and customer debited by the price, reseller by the cost, even into
--    negative (the call happened), with a blocked flag when an account was blocked, empty or
--    negative before this CDR. Debits are summed per account and written with one HINCRBY each.
-- Then the seed's rules (common.lua) and the watermarks, all in this one atomic call.
local APPLIED, DUPLICATE, UNKNOWN_ACCOUNT, REPLAY_EXPIRED = 0, 1, 2, 3

local topic, part_s = ARGV[1], ARGV[2]
local part, window, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local nres, ncust, ncard, nauth = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local res_ids, cust_ids, card_ids = split(ARGV[9], nres), split(ARGV[10], ncust), split(ARGV[12], ncard)
local cust_res, card_res = ARGV[11], ARGV[13]
local auth_ids = split(ARGV[14], nauth)
local recs, fieldblob = ARGV[15], ARGV[16] -- ARGV[17]: orphan records (cluster), see step 2
local global = ARGV[18] == '1'
local now = tonumber(redis.call('TIME')[1])
local bucket = math.floor(now / window)
local cur_s, prev_s = fmt(bucket), fmt(bucket - 1)
local CHUNK = 1000
local young_since = now - 2 * window
local SUFFIX = {}
for o = 0, 3 do for b = 0, 1 do SUFFIX[o * 2 + b] = string.char(o, b) end end

local R, C, K = {}, {}, {}
for i = 1, nres do
  local id = res_ids[i]
  local tag = tagof(id)
  local wmkey = tag .. ':wm:' .. topic .. ':' .. part_s
  R[i] = {id = id, tag = tag, wmkey = wmkey, wm = tonumber(redis.call('GET', wmkey) or '-1'),
          d = 0, rows = {}, new = {}}
end
for i = 1, ncust do
  local ri = struct.unpack('<i4', cust_res, (i - 1) * 4 + 1)
  C[i] = {id = cust_ids[i], r = ri, d = 0}
end
for i = 1, ncard do
  local ri = struct.unpack('<i4', card_res, (i - 1) * 4 + 1)
  K[i] = {id = card_ids[i], r = ri, d = 0}
end

local function load_res(r)
  if r.loaded == nil then
    r.key = r.tag .. ':res'
    local f = redis.call('HMGET', r.key, 'bal', 'st', 'blk', 'ani')
    r.loaded = f[1] ~= false
    if r.loaded then
      r.bal, r.st, r.thr = tonumber(f[1]), f[2], tonumber(f[4] or '1000000')
      r.bad = f[2] ~= 'active' or f[3] == '1'
    end
  end
  return r.loaded
end
local function load_cust(c)
  if c.loaded == nil then
    c.key = R[c.r].tag .. ':c:' .. c.id
    local f = redis.call('HMGET', c.key, 'bal', 'st', 'blk', 'created')
    c.loaded = f[1] ~= false
    if c.loaded then
      c.bal, c.st, c.bad = tonumber(f[1]), f[2], (f[2] ~= 'active' or f[3] == '1')
      c.young = tonumber(f[4] or '0') > young_since
    end
  end
  return c.loaded
end
local function load_card(k)
  if k.loaded == nil then
    k.key = R[k.r].tag .. ':k:' .. k.id
    local f = redis.call('HMGET', k.key, 'bal', 'st', 'blk', 'exp', 'anion', 'created')
    k.loaded = f[1] ~= false
    if k.loaded then
      local exp = tonumber(f[4] or '0')
      k.bal, k.st, k.anion = tonumber(f[1]), f[2], f[5]
      k.young = tonumber(f[6] or '0') > young_since
      k.bad = f[2] ~= 'active' or f[3] == '1' or (exp > 0 and exp <= now)
    end
  end
  return k.loaded
end

-- the outcome stored with a message identity, or DUPLICATE for another identity
local function recorded(v, ident)
  if not v then return REPLAY_EXPIRED, 0 end
  if string.sub(v, 1, 18) == ident then return string.byte(v, 19), string.byte(v, 20) end
  return DUPLICATE, 0
end

-- 1. group the CDRs per reseller; only the reseller index and the field are read here (the
--    record is unpacked once, in step 3: per-CDR Lua tables cost more than a second unpack)
local RI, FIELD = {}, {}
local fp = 1
for i = 1, n do
  local base = (i - 1) * 54 + 1
  local ri, flen = struct.unpack('<i4', recs, base + 34), struct.unpack('<i4', recs, base + 50)
  RI[i], FIELD[i] = ri, string.sub(fieldblob, fp, fp + flen - 1)
  fp = fp + flen
  local rows = R[ri].rows
  rows[#rows + 1] = i
end

-- 2. read every record of the batch: one HMGET per bucket and reseller (in chunks)
local REC = {}
local function fetch(key, rows)
  if redis.call('EXISTS', key) == 0 then return end
  for first = 1, #rows, CHUNK do
    local last = math.min(first + CHUNK - 1, #rows)
    local fields = {}
    for j = first, last do fields[#fields + 1] = FIELD[rows[j]] end
    local got = redis.call('HMGET', key, unpack(fields))
    for j = first, last do
      local v = got[j - first + 1]
      if v and not REC[rows[j]] then REC[rows[j]] = v end
    end
  end
end
for _, r in ipairs(R) do
  if #r.rows > 0 then
    r.cur = r.tag .. ':d:' .. cur_s
    fetch(r.cur, r.rows)
    fetch(r.tag .. ':d:' .. prev_s, r.rows)
    -- single server: a copy first seen while its account (or card) was unknown sits under
    -- {r:}; only accounts created within the last two windows can have such copies
    if global and r.id ~= '' then
      local young = {}
      for _, i in ipairs(r.rows) do
        local ci, ki = struct.unpack('<i4i4', recs, (i - 1) * 54 + 39)
        local c, k = ci > 0 and C[ci] or nil, ki > 0 and K[ki] or nil
        if (c and load_cust(c) and c.young) or (k and load_card(k) and k.young) then
          young[#young + 1] = i
        end
      end
      if #young > 0 then
        fetch('{r:}:d:' .. cur_s, young)
        fetch('{r:}:d:' .. prev_s, young)
      end
    end
  end
end

-- Redis Cluster: the orphan records above cannot be read from this slot; the caller read them
-- from {r:} and passes the hits as (row i4, record 20 bytes) entries (rater/redis/cluster.py)
local orphans = ARGV[17]
for p = 1, #orphans, 24 do
  local i = struct.unpack('<i4', orphans, p)
  if not REC[i] then REC[i] = string.sub(orphans, p + 4, p + 23) end
end

-- 3. decide each CDR in offset order; sum the debits per account
local outcomes, blockeds, replays = {}, {}, {}
local touched_r, touched_c, touched_k = {}, {}, {}
local fresh = {} -- field -> identity of a CDR recorded earlier in this batch
local last = -1
local pos = 1
for i = 1, n do
  -- the first 18 bytes are the message identity as stored in records: topic token (8),
  -- partition (u16), offset (i64); packed by Python so Lua does not build it per CDR
  local ident, price, cost, ri, ci, ki, ai, flen
  ident, price, cost, ri, ci, ki, ai, flen, pos = struct.unpack('<c18i8i8i4i4i4i4i4', recs, pos)
  local off = struct.unpack('<i8', ident, 11)
  last = off
  local r = R[ri]
  local outcome, blocked, replay = APPLIED, 0, 0
  local v = REC[i] or fresh[FIELD[i]]
  if off <= r.wm then
    replay = 1
    outcome, blocked = recorded(v, ident)
  elseif v then
    outcome, blocked = recorded(v, ident)
    if outcome ~= DUPLICATE then replay = 1 end
  else
    local c = ci > 0 and C[ci] or nil
    local k = ki > 0 and K[ki] or nil
    local known = true
    if r.id ~= '' then known = load_res(r) end
    if c and not load_cust(c) then known = false end
    if k and not load_card(k) then known = false end
    if not known then
      outcome = UNKNOWN_ACCOUNT
    else
      if r.id ~= '' and (r.bad or r.bal < 0) then blocked = 1 end
      if c and (c.bad or c.bal < 0) then blocked = 1 end
      if k and (k.bad or k.bal <= 0) then blocked = 1 end
    end
    local record = ident .. SUFFIX[outcome * 2 + blocked]
    fresh[FIELD[i]] = record
    r.new[#r.new + 1] = FIELD[i]
    r.new[#r.new + 1] = record
    if outcome == APPLIED and (price ~= 0 or cost ~= 0) then
      if r.id ~= '' and cost ~= 0 then
        if not r.t then r.t = true; touched_r[#touched_r + 1] = r end
        r.d = r.d + cost
        r.bal = r.bal - cost
      end
      if c and price ~= 0 then
        if not c.t then c.t = true; touched_c[#touched_c + 1] = c end
        c.d = c.d + price
        c.bal = c.bal - price
      end
      if k and price ~= 0 then
        if not k.t then k.t = true; touched_k[#touched_k + 1] = k end
        k.d = k.d + price
        k.bal = k.bal - price
      end
    end
    if outcome == APPLIED and ai > 0 then
      -- the call is over: release what its authorization reserved
      local auth = auth_ids[ai]
      if r.id ~= '' then redis.call('HDEL', r.tag .. ':rsv:r:' .. r.id, auth) end
      if c then redis.call('HDEL', r.tag .. ':rsv:c:' .. c.id, auth) end
      if k then redis.call('HDEL', r.tag .. ':rsv:k:' .. k.id, auth) end
    end
  end
  outcomes[i], blockeds[i], replays[i] = outcome, blocked, replay
end

-- 4. write the new records: one HSET per reseller bucket (in chunks); the bucket outlives the
--    next one, so each record is kept at least one window
for _, r in ipairs(R) do
  if #r.new > 0 then
    for first = 1, #r.new, 2 * CHUNK do
      redis.call('HSET', r.cur, unpack(r.new, first, math.min(first + 2 * CHUNK - 1, #r.new)))
    end
    redis.call('EXPIREAT', r.cur, fmt((bucket + 2) * window))
  end
end

-- one HINCRBY per touched account, then the seed's rules on the new balances
local balances, events = {}, {}
for _, r in ipairs(touched_r) do
  local bal = redis.call('HINCRBY', r.key, 'bal', fmt(-r.d))
  -- the rules only when a state can change (saves a read per account and batch)
  if (bal < 0) == (r.st == 'active') then settle_party(r.id, r.key, 'reseller', r.id, bal, events) end
  balances[#balances + 1] = 'r'; balances[#balances + 1] = r.id; balances[#balances + 1] = bal
end
for _, c in ipairs(touched_c) do
  local bal = redis.call('HINCRBY', c.key, 'bal', fmt(-c.d))
  if (bal < 0) == (c.st == 'active') then settle_party(R[c.r].id, c.key, 'customer', c.id, bal, events) end
  balances[#balances + 1] = 'c'; balances[#balances + 1] = c.id; balances[#balances + 1] = bal
end
for _, k in ipairs(touched_k) do
  local bal = redis.call('HINCRBY', k.key, 'bal', fmt(-k.d))
  local r = R[k.r]
  load_res(r)
  local thr = r.thr or 1000000
  if (bal <= 0) == (k.st == 'active') or (bal >= thr) ~= (k.anion == '1') then
    settle_card(r.id, k.id, bal, thr, global, events)
  end
  balances[#balances + 1] = 'k'; balances[#balances + 1] = k.id; balances[#balances + 1] = bal
end

-- watermarks: per reseller slot (what a per-reseller split needs) and per partition
if n > 0 then
  for i = 1, nres do
    if last > R[i].wm then redis.call('SET', R[i].wmkey, fmt(last)) end
  end
  -- (Redis Cluster: its own slot; rater/redis/cluster.py raises it after every sub-batch)
  if global then
    local pkey = 'wm:' .. topic .. ':' .. part_s
    if last > tonumber(redis.call('GET', pkey) or '-1') then redis.call('SET', pkey, fmt(last)) end
  end
end

local function bytes(list)
  local parts = {}
  for i = 1, #list, 4000 do
    parts[#parts + 1] = string.char(unpack(list, i, math.min(i + 3999, #list)))
  end
  return table.concat(parts)
end
return {bytes(outcomes), bytes(blockeds), bytes(replays), balances, events}
