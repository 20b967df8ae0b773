-- One addition or correction to one balance, with the coverage rule (docs/DESIGN.md section 1).
-- ARGV: level (r|c|k), reseller id, account id, amount (micro, signed), check coverage (1|0),
--       refuse disposable cards (1|0), may touch global keys (1|0)
-- Returns {0, new balance} | {1, 0} not found | {2, shortfall} coverage | {3, 0} disposable
--         | {4, 0} exhausted card
local level, res, id = ARGV[1], ARGV[2], ARGV[3]
local amount = tonumber(ARGV[4])
local check, refuse_disp, global = ARGV[5] == '1', ARGV[6] == '1', ARGV[7] == '1'
local rkey = tagof(res) .. ':res'
local credit = tonumber(redis.call('HGET', rkey, 'bal') or 'nan')
if credit ~= credit then return {1, 0} end
local out = {}
if level == 'r' then
  if check and amount < 0 then
    local total = coverage_total(res)
    if credit + amount < total then return {2, total - credit - amount} end
  end
  local bal = redis.call('HINCRBY', rkey, 'bal', fmt(amount))
  settle_party(res, rkey, 'reseller', res, bal, out)
  return {0, bal}
elseif level == 'c' then
  local key = tagof(res) .. ':c:' .. id
  local old = tonumber(redis.call('HGET', key, 'bal') or 'nan')
  if old ~= old then return {1, 0} end
  if check and amount > 0 then
    -- only the growth of the positive part is new credit to cover
    local issued = math.max(old + amount, 0) - math.max(old, 0)
    local total = coverage_total(res)
    if total + issued > credit then return {2, total + issued - credit} end
  end
  local bal = redis.call('HINCRBY', key, 'bal', fmt(amount))
  settle_party(res, key, 'customer', id, bal, out)
  return {0, bal}
else
  local key = tagof(res) .. ':k:' .. id
  local f = redis.call('HMGET', key, 'bal', 'disp', 'st')
  if not f[1] then return {1, 0} end
  if amount > 0 and f[2] == '1' and refuse_disp then return {3, 0} end
  if amount > 0 and f[3] == 'exhausted' then return {4, 0} end
  local bal = redis.call('HINCRBY', key, 'bal', fmt(amount))
  settle_card(res, id, bal, threshold_of(res), global, out)
  return {0, bal}
end
