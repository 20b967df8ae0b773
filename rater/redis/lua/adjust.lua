-- One addition or correction to one balance, with the coverage rule (docs/DESIGN.md section 1),
-- applied once per ledger entry id.
-- ARGV: level (r|c|k), reseller id, account id, amount (micro, signed), check coverage (1|0),
--       refuse disposable cards (1|0), may touch global keys (1|0), ledger entry id ('' none),
--       the entry's UTC day (epoch day number), when the day's record of ids expires (epoch s)
-- Returns {ADJUST.APPLIED, new balance} | {NOT_FOUND, 0} | {NOT_COVERED, shortfall}
--         | {DISPOSABLE, 0} | {EXHAUSTED, 0} | {ALREADY_APPLIED, balance} | {OUT_OF_RANGE, 0}
-- The entry id is recorded in the reseller's slot beside the change, so a change Redis lost
-- (its append-only file's last second) is applied again from the ClickHouse ledger exactly
-- once (rater/billing/recovery.py), and one Redis kept is never applied twice.
local level, res, id = ARGV[1], ARGV[2], ARGV[3]
local amount = tonumber(ARGV[4])
local check, refuse_disp, global = ARGV[5] == '1', ARGV[6] == '1', ARGV[7] == '1'
local entry, day, expire_at = ARGV[8] or '', ARGV[9] or '0', ARGV[10] or '0'
local rkey = tagof(res) .. ':res'
local credit = tonumber(redis.call('HGET', rkey, 'bal') or 'nan')
if credit ~= credit then return {ADJUST.NOT_FOUND, 0} end
local applied = K.ledger_applied(res, day)
local function balance_key()
  if level == 'r' then return rkey elseif level == 'c' then return tagof(res) .. ':c:' .. id end
  return tagof(res) .. ':k:' .. id
end
if entry ~= '' and redis.call('HEXISTS', applied, entry) == 1 then
  return {ADJUST.ALREADY_APPLIED, tonumber(redis.call('HGET', balance_key(), 'bal') or '0')}
end
local function record()
  if entry ~= '' then
    redis.call('HSET', applied, entry, '1')
    redis.call('EXPIREAT', applied, expire_at)
  end
end
local out = {}
if level == 'r' then
  if check and amount < 0 then
    local total = coverage_total(res)
    if credit + amount < total then return {ADJUST.NOT_COVERED, total - credit - amount} end
  end
  if not within(credit, -amount) then return {ADJUST.OUT_OF_RANGE, 0} end
  local bal = redis.call('HINCRBY', rkey, 'bal', fmt(amount))
  settle_party(res, rkey, 'reseller', res, bal, out)
  record()
  return {ADJUST.APPLIED, bal}
elseif level == 'c' then
  local key = tagof(res) .. ':c:' .. id
  local old = tonumber(redis.call('HGET', key, 'bal') or 'nan')
  if old ~= old then return {ADJUST.NOT_FOUND, 0} end
  if check and amount > 0 then
    -- only the growth of the positive part is new credit to cover
    local issued = math.max(old + amount, 0) - math.max(old, 0)
    local total = coverage_total(res)
    if total + issued > credit then return {ADJUST.NOT_COVERED, total + issued - credit} end
  end
  if not within(old, -amount) then return {ADJUST.OUT_OF_RANGE, 0} end
  local bal = redis.call('HINCRBY', key, 'bal', fmt(amount))
  settle_party(res, key, 'customer', id, bal, out)
  record()
  return {ADJUST.APPLIED, bal}
else
  local key = tagof(res) .. ':k:' .. id
  local f = redis.call('HMGET', key, 'bal', 'disp', 'st')
  if not f[1] then return {ADJUST.NOT_FOUND, 0} end
  if amount > 0 and f[2] == '1' and refuse_disp then return {ADJUST.DISPOSABLE, 0} end
  if amount > 0 and f[3] == 'exhausted' then return {ADJUST.EXHAUSTED, 0} end
  if not within(tonumber(f[1]), -amount) then return {ADJUST.OUT_OF_RANGE, 0} end
  local bal = redis.call('HINCRBY', key, 'bal', fmt(amount))
  settle_card(res, id, bal, threshold_of(res), global, out)
  record()
  return {ADJUST.APPLIED, bal}
end
