-- Applies one batch of CDRs of one (topic identity, partition): one call per batch on one
-- server, one call per slot on Redis Cluster. rater/pipeline/debit.py documents the outcomes,
-- docs/REDIS_KEYS.md the keys; the generated header names the arguments (DEBIT_ARG), the
-- packed records (CDR, STORED, EXTERNAL), the outcome codes (DEBIT) and the key functions (K).
--
-- De-duplication records live in time buckets (bucket = now / window), one hash field per CDR
-- ('<len(switch)>:<switch>:<cdr_id>') holding STORED: message identity, outcome, blocked flag,
-- fingerprint of the rating fields. On one server (`global`) every reseller's records share
-- `d:<bucket>`, so a (switch, cdr_id) is found whatever account it names; on Redis Cluster each
-- reseller's slot keeps its own `{r:R}:d:<bucket>` and the caller claimed every CDR across
-- resellers first (claim.lua), passing the claims of other messages as EXTERNAL records. A CDR
-- is looked up in the current and the previous bucket, so a record is kept at least one window
-- (at most two). One HMGET per bucket reads the batch, one HSET per bucket writes it: per-key
-- SET NX EX cost about 4x more per CDR.
--
-- For each CDR, in offset order:
--  * offset <= its reseller's watermark: a replay. Nothing changes; the outcome is read back
--    from the record (same message identity -> the outcome it got; another identity -> it was
--    a DUPLICATE, or a CONFLICT when the fingerprints differ; no record -> REPLAY_EXPIRED).
--  * a record exists (or an earlier CDR of this batch had the same field): DUPLICATE or
--    CONFLICT (or, with the same message identity, a replay beyond a lost watermark).
--  * an account named does not exist: UNKNOWN_ACCOUNT, recorded.
--  * an amount beyond MAX_AMOUNT, or a balance it would take beyond -MAX_AMOUNT:
--    OUT_OF_RANGE, recorded, nothing applied.
--  * else APPLIED: card and customer debited by the price, reseller by the cost, even into
--    negative (the call happened), with a blocked flag when an account was blocked, empty or
--    negative before this CDR. Debits are summed per account (exactly: a sum is written with
--    HINCRBY before it would pass MAX_AMOUNT) and written with one HINCRBY each.
-- Then the notice's rules (common.lua) and the reseller watermarks, all in this one call.

local topic, part_s = ARGV[DEBIT_ARG.topic], ARGV[DEBIT_ARG.partition]
local window, n = tonumber(ARGV[DEBIT_ARG.window]), tonumber(ARGV[DEBIT_ARG.count])
local res_ids = unpack_strings(ARGV[DEBIT_ARG.resellers])
local cust_ids = unpack_strings(ARGV[DEBIT_ARG.customers])
local card_ids = unpack_strings(ARGV[DEBIT_ARG.cards])
local auth_ids = unpack_strings(ARGV[DEBIT_ARG.auth_ids])
local cust_res, card_res = ARGV[DEBIT_ARG.customer_reseller], ARGV[DEBIT_ARG.card_reseller]
local recs, fieldblob = ARGV[DEBIT_ARG.records], ARGV[DEBIT_ARG.fields]
local external = ARGV[DEBIT_ARG.external]
local global = ARGV[DEBIT_ARG.global] == '1'
local now = tonumber(redis.call('TIME')[1])
local bucket = math.floor(now / window)
local cur_s, prev_s = fmt(bucket), fmt(bucket - 1)
local CHUNK = 1000
local REC_SIZE, REC_UNPACK = CDR.SIZE, CDR.UNPACK
local AT_RESELLER, AT_KEY_LEN = CDR_AT.reseller, CDR_AT.key_len
local NO_FINGERPRINT = string.rep('\0', FINGERPRINT_SIZE)
local SUFFIX = {} -- outcome and blocked bytes of a new record
for _, o in pairs(DEBIT) do for b = 0, 1 do SUFFIX[o * 2 + b] = string.char(o, b) end end

-- where the records are read and written: all rows together on one server, per reseller slot
-- on Redis Cluster
local groups, shared = {}, nil
local function group_of(id)
  if global then
    if not shared then
      shared = {cur = K.records(cur_s), prev = K.records(prev_s), rows = {}, new = {}}
      groups[#groups + 1] = shared
    end
    return shared
  end
  local g = {cur = K.reseller_records(id, cur_s), prev = K.reseller_records(id, prev_s),
             rows = {}, new = {}}
  groups[#groups + 1] = g
  return g
end

local R, C, KC = {}, {}, {}
for i, id in ipairs(res_ids) do
  local wmkey = K.watermark(id, topic, part_s)
  R[i] = {id = id, wmkey = wmkey, wm = tonumber(redis.call('GET', wmkey) or '-1'),
          g = group_of(id), d = 0, rows = {}}
end
for i, id in ipairs(cust_ids) do
  C[i] = {id = id, r = struct.unpack(INDEX.FMT, cust_res, (i - 1) * INDEX.SIZE + 1), d = 0}
end
for i, id in ipairs(card_ids) do
  KC[i] = {id = id, r = struct.unpack(INDEX.FMT, card_res, (i - 1) * INDEX.SIZE + 1), d = 0}
end

local function load_res(r)
  if r.loaded == nil then
    r.key = K.reseller(r.id)
    local f = redis.call('HMGET', r.key, 'bal', 'st', 'blk', 'ani')
    r.loaded = f[1] ~= false
    if r.loaded then
      r.bal, r.st, r.thr = tonumber(f[1]), f[2], tonumber(f[4] or '1000000')
      r.bad = f[2] ~= 'active' or f[3] == '1'
      r.outside = r.bal > MAX_AMOUNT or r.bal < -MAX_AMOUNT
    end
  end
  return r.loaded
end
local function load_cust(c)
  if c.loaded == nil then
    c.key = K.customer(R[c.r].id, c.id)
    local f = redis.call('HMGET', c.key, 'bal', 'st', 'blk')
    c.loaded = f[1] ~= false
    if c.loaded then
      c.bal, c.st, c.bad = tonumber(f[1]), f[2], (f[2] ~= 'active' or f[3] == '1')
      c.outside = c.bal > MAX_AMOUNT or c.bal < -MAX_AMOUNT
    end
  end
  return c.loaded
end
local function load_card(k)
  if k.loaded == nil then
    k.key = K.card(R[k.r].id, k.id)
    local f = redis.call('HMGET', k.key, 'bal', 'st', 'blk', 'exp', 'anion')
    k.loaded = f[1] ~= false
    if k.loaded then
      local exp = tonumber(f[4] or '0')
      k.bal, k.st, k.anion = tonumber(f[1]), f[2], f[5]
      k.bad = f[2] ~= 'active' or f[3] == '1' or (exp > 0 and exp <= now)
      k.outside = k.bal > MAX_AMOUNT or k.bal < -MAX_AMOUNT
    end
  end
  return k.loaded
end

-- what a record says about a CDR: the outcome stored with the same message identity (and
-- true: it is this message's own), else DUPLICATE, or CONFLICT when both copies carry a
-- fingerprint of their rating fields and these differ
local function recorded(v, ident, fp)
  if not v then return DEBIT.REPLAY_EXPIRED, 0, false end
  if string.sub(v, 1, IDENT_SIZE) == ident then
    return string.byte(v, STORED_AT.outcome), string.byte(v, STORED_AT.blocked), true
  end
  local first = string.sub(v, STORED_AT.fingerprint, STORED_AT.fingerprint + FINGERPRINT_SIZE - 1)
  if #first == FINGERPRINT_SIZE and first ~= NO_FINGERPRINT and fp ~= NO_FINGERPRINT
      and first ~= fp then
    return DEBIT.CONFLICT, 0, false
  end
  return DEBIT.DUPLICATE, 0, false
end

-- a debit that takes a balance (within +-MAX_AMOUNT) below -MAX_AMOUNT, or an account whose
-- stored balance is already outside (amounts are integers of at most 2^53: a double rounds
-- monotonically, so a result beyond the bound stays beyond it)
local function beyond(a, amount)
  return amount ~= 0 and (a.outside or a.bal - amount < -MAX_AMOUNT)
end

-- a debit of one account is summed in a.d and written with HINCRBY before the sum would pass
-- MAX_AMOUNT (each sum is then an exact integer in a double)
local function flush(a)
  if a.d ~= 0 then
    a.written = redis.call('HINCRBY', a.key, 'bal', fmt(-a.d))
    a.d = 0
  end
end

-- 1. each CDR's de-duplication field and records group; only the reseller index and the field
--    length are read here (the record is unpacked once, in step 3)
local FIELD = {}
local fp_pos = 1
for i = 1, n do
  local base = (i - 1) * REC_SIZE
  local ri = struct.unpack(CDR_FMT.reseller, recs, base + AT_RESELLER)
  local flen = struct.unpack(CDR_FMT.key_len, recs, base + AT_KEY_LEN)
  FIELD[i] = string.sub(fieldblob, fp_pos, fp_pos + flen - 1)
  fp_pos = fp_pos + flen
  local rows = R[ri].g.rows
  rows[#rows + 1] = i
  if global then R[ri].rows[#R[ri].rows + 1] = i end
end

-- 2. read every record of the batch: one HMGET per bucket and group (in chunks)
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
for _, g in ipairs(groups) do
  if #g.rows > 0 then
    fetch(g.cur, g.rows)
    fetch(g.prev, g.rows)
  end
end
-- one server: records written before they moved to d:<bucket> (the layout of Redis Cluster)
-- still count until they expire, two windows after the move; EXISTS skips them after that
if global then
  for _, r in ipairs(R) do
    if #r.rows > 0 then
      fetch(K.reseller_records(r.id, cur_s), r.rows)
      fetch(K.reseller_records(r.id, prev_s), r.rows)
    end
  end
end
-- Redis Cluster: records from other slots (claims of other messages; a record of this very
-- message kept by the reseller it was first debited under), read by the caller
for p = 1, #external, EXTERNAL.SIZE do
  local row, rec = struct.unpack(EXTERNAL.UNPACK, external, p)
  if not REC[row] then REC[row] = rec end
end

-- 3. decide each CDR in offset order; sum the debits per account
local outcomes, blockeds, replays, firsts = {}, {}, {}, {}
local touched_r, touched_c, touched_k = {}, {}, {}
local fresh = {} -- field -> record of a CDR recorded earlier in this batch
local last = -1
local pos = 1
for i = 1, n do
  -- the first IDENT_SIZE bytes are the message identity as stored in records: topic token,
  -- partition, offset; packed by Python so Lua does not build it per CDR
  local ident, price, cost, ri, ci, ki, ai, _, fp
  ident, price, cost, ri, ci, ki, ai, _, fp, pos = struct.unpack(REC_UNPACK, recs, pos)
  local off = struct.unpack(CDR_FMT.offset, ident, CDR_AT.offset)
  last = off
  local r = R[ri]
  local outcome, blocked, replay = DEBIT.APPLIED, 0, 0
  local v = REC[i] or fresh[FIELD[i]]
  if off <= r.wm then
    replay = 1
    outcome, blocked = recorded(v, ident, fp)
  elseif v then
    local own
    outcome, blocked, own = recorded(v, ident, fp)
    if own then replay = 1 end
  else
    local c = ci > 0 and C[ci] or nil
    local k = ki > 0 and KC[ki] or nil
    local known = true
    if r.id ~= '' then known = load_res(r) end
    if c and not load_cust(c) then known = false end
    if k and not load_card(k) then known = false end
    if not known then
      outcome = DEBIT.UNKNOWN_ACCOUNT
    elseif price > MAX_AMOUNT or cost > MAX_AMOUNT or price < 0 or cost < 0
        or (r.id ~= '' and beyond(r, cost)) or (c and beyond(c, price))
        or (k and beyond(k, price)) then
      outcome = DEBIT.OUT_OF_RANGE
    else
      if r.id ~= '' and (r.bad or r.bal < 0) then blocked = 1 end
      if c and (c.bad or c.bal < 0) then blocked = 1 end
      if k and (k.bad or k.bal <= 0) then blocked = 1 end
    end
    local record = ident .. SUFFIX[outcome * 2 + blocked] .. fp
    fresh[FIELD[i]] = record
    local new = r.g.new
    new[#new + 1] = FIELD[i]
    new[#new + 1] = record
    if outcome == DEBIT.APPLIED then
      if r.id ~= '' and cost ~= 0 then
        if not r.t then r.t = true; touched_r[#touched_r + 1] = r end
        if r.d + cost > MAX_AMOUNT then flush(r) end
        r.d = r.d + cost
        r.bal = r.bal - cost
      end
      if c and price ~= 0 then
        if not c.t then c.t = true; touched_c[#touched_c + 1] = c end
        if c.d + price > MAX_AMOUNT then flush(c) end
        c.d = c.d + price
        c.bal = c.bal - price
      end
      if k and price ~= 0 then
        if not k.t then k.t = true; touched_k[#touched_k + 1] = k end
        if k.d + price > MAX_AMOUNT then flush(k) end
        k.d = k.d + price
        k.bal = k.bal - price
      end
      if ai > 0 then
        -- the call is over: release what its authorization reserved
        local auth = auth_ids[ai]
        if r.id ~= '' then rsv_release(r.id, 'r', r.id, auth) end
        if c then rsv_release(r.id, 'c', c.id, auth) end
        if k then rsv_release(r.id, 'k', k.id, auth) end
      end
    end
  end
  if outcome == DEBIT.CONFLICT then
    -- which message was charged: (row, identity of the first copy) for the operator
    firsts[#firsts + 1] = struct.pack(FIRST_COPY_FMT.row, i) .. string.sub(v, 1, IDENT_SIZE)
  end
  outcomes[i], blockeds[i], replays[i] = outcome, blocked, replay
end

-- 4. write the new records: one HSET per bucket and group (in chunks); the bucket outlives
--    the next one, so each record is kept at least one window
for _, g in ipairs(groups) do
  if #g.new > 0 then
    for first = 1, #g.new, 2 * CHUNK do
      redis.call('HSET', g.cur, unpack(g.new, first, math.min(first + 2 * CHUNK - 1, #g.new)))
    end
    redis.call('EXPIREAT', g.cur, fmt((bucket + 2) * window))
  end
end

-- 5. the last HINCRBY per touched account, then the notice's rules on the new balances
local balances, events = {}, {}
for _, r in ipairs(touched_r) do
  flush(r)
  local bal = r.written
  -- the rules only when a state can change (saves a read per account and batch)
  if (bal < 0) == (r.st == 'active') then settle_party(r.id, r.key, 'reseller', r.id, bal, events) end
  balances[#balances + 1] = 'r'; balances[#balances + 1] = r.id; balances[#balances + 1] = bal
end
for _, c in ipairs(touched_c) do
  flush(c)
  local bal = c.written
  if (bal < 0) == (c.st == 'active') then settle_party(R[c.r].id, c.key, 'customer', c.id, bal, events) end
  balances[#balances + 1] = 'c'; balances[#balances + 1] = c.id; balances[#balances + 1] = bal
end
for _, k in ipairs(touched_k) do
  flush(k)
  local bal = k.written
  local r = R[k.r]
  load_res(r)
  local thr = r.thr or 1000000
  if (bal <= 0) == (k.st == 'active') or (bal >= thr) ~= (k.anion == '1') then
    settle_card(r.id, k.id, bal, thr, global, events)
  end
  balances[#balances + 1] = 'k'; balances[#balances + 1] = k.id; balances[#balances + 1] = bal
end

-- 6. the watermark of each reseller slot (the partition's own is raised by the caller once
--    every call of the batch succeeded: rater/pipeline/debit.py)
if n > 0 then
  for _, r in ipairs(R) do
    if last > r.wm then redis.call('SET', r.wmkey, fmt(last)) end
  end
end

local function bytes(list)
  local parts = {}
  for i = 1, #list, 4000 do
    parts[#parts + 1] = string.char(unpack(list, i, math.min(i + 3999, #list)))
  end
  return table.concat(parts)
end
-- outcome, blocked and replayed: one byte per CDR; balances: (level, id, balance) triples;
-- events: 'kind:level:id:balance'; firsts: (row i4, identity) of each CONFLICT's first copy
return {bytes(outcomes), bytes(blockeds), bytes(replays), balances, events, table.concat(firsts)}
