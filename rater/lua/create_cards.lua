-- Creates a batch of cards for one customer, atomically with its funding (disposable batches
-- fund the customer with count x value, which the reseller's credit must cover).
-- ARGV: reseller, customer, batch id, fund (micro), count, then per card 5 values:
--       number, PIN HMAC (hex), value (micro), disposable (1|0), expires (epoch s, 0 none)
-- Returns {0, customer balance} | {1, ''} customer not found | {2, shortfall} coverage
--         | {5, number} a card number already exists (the caller draws new numbers)
-- KEYS[1], when given, is the reseller's hash (Redis Cluster routes the call by it): then the
-- caller has reserved the global card:/batchid: keys and bumps the generation itself
-- (rater/debit_cluster.py), and the script stays inside the reseller's slot.
local global = #KEYS == 0
local res, cust, batch = ARGV[1], ARGV[2], ARGV[3]
local fund, count = tonumber(ARGV[4]), tonumber(ARGV[5])
local tag = tagof(res)
local ckey = tag .. ':c:' .. cust
local old = tonumber(redis.call('HGET', ckey, 'bal') or 'nan')
if old ~= old then return {1, ''} end
if global then
  for i = 0, count - 1 do
    local num = ARGV[6 + i * 5]
    if redis.call('EXISTS', 'card:' .. num) == 1 then return {5, num} end
  end
end
if fund > 0 then
  local credit = tonumber(redis.call('HGET', tag .. ':res', 'bal') or '0')
  local issued = math.max(old + fund, 0) - math.max(old, 0)
  local total = coverage_total(res)
  if total + issued > credit then return {2, total + issued - credit} end
end
local threshold = threshold_of(res)
local now = redis.call('TIME')[1]
for i = 0, count - 1 do
  local b = 6 + i * 5
  local num, pin, value, disp, exp = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2]), ARGV[b + 3], ARGV[b + 4]
  local st = 'active'
  if value <= 0 then st = (disp == '1') and 'exhausted' or 'empty' end
  redis.call('HSET', tag .. ':k:' .. num, 'cust', cust, 'res', res, 'bal', fmt(value),
    'value', fmt(value), 'disp', disp, 'st', st, 'blk', '0',
    'anion', (value >= threshold and st ~= 'exhausted') and '1' or '0',
    'exp', exp, 'batch', batch, 'pin', pin, 'pinfail', '0', 'pinlock', '0', 'created', now)
  if global then redis.call('SET', 'card:' .. num, res .. ':' .. cust) end
  redis.call('SADD', ckey .. ':cards', num)
  if batch ~= '' then redis.call('SADD', tag .. ':batch:' .. batch, num) end
end
if global and batch ~= '' then redis.call('SET', 'batchid:' .. batch, res .. ':' .. cust) end
local bal = old
if fund ~= 0 then
  bal = redis.call('HINCRBY', ckey, 'bal', fmt(fund))
  settle_party(res, ckey, 'customer', cust, bal, {})
end
if global then redis.call('INCR', 'accounts:generation') end
return {0, bal}
