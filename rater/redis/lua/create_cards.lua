-- Creates a batch of cards for one customer in two phases, so that Redis is never busy for
-- long (one call for 100,000 cards held the server for ~8 s: no rating meanwhile):
--
-- ARGV[1] = 'fund': ARGV reseller, customer, batch id, fund (micro)
--   Registers the batch and funds its customer (a disposable batch: count x value, which the
--   reseller's credit must cover), atomically, before any card exists.
--   Returns {0, customer balance} | {1, ''} customer not found | {2, shortfall} coverage
--           | {6, ''} the batch id is taken
-- ARGV[1] = 'cards': ARGV reseller, customer, batch id, value (micro), disposable (1|0),
--                    expires (epoch s, 0 none), PIN key id, then per card 2 values: number,
--                    PIN HMAC (hex) under that key (rater/accounts/pinkeys.py)
--   Creates one chunk of the batch's cards (the caller sends a few thousand per call).
--   Returns {0, ''} | {1, ''} customer not found
--           | {5, number} a card number already exists (nothing of the chunk was created; the
--             caller draws another number for it and sends the chunk again)
--
-- KEYS[1], when given, is the reseller's hash (Redis Cluster routes the call by it): then the
-- caller has reserved the global card:/batchid: keys and bumps the generation itself
-- (rater/redis/cluster.py), and the script stays inside the reseller's slot.
local global = #KEYS == 0
local phase, res, cust, batch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local tag = tagof(res)
local ckey = tag .. ':c:' .. cust
local old = tonumber(redis.call('HGET', ckey, 'bal') or 'nan')
if old ~= old then return {1, ''} end

if phase == 'fund' then
  local fund = tonumber(ARGV[5])
  if global and batch ~= '' and redis.call('EXISTS', 'batchid:' .. batch) == 1 then
    return {6, ''}
  end
  if fund > 0 then
    local credit = tonumber(redis.call('HGET', tag .. ':res', 'bal') or '0')
    local issued = math.max(old + fund, 0) - math.max(old, 0)
    local total = coverage_total(res)
    if total + issued > credit then return {2, total + issued - credit} end
  end
  if global and batch ~= '' then redis.call('SET', 'batchid:' .. batch, res .. ':' .. cust) end
  local bal = old
  if fund ~= 0 then
    bal = redis.call('HINCRBY', ckey, 'bal', fmt(fund))
    settle_party(res, ckey, 'customer', cust, bal, {})
    if global then redis.call('INCR', 'accounts:generation') end
  end
  return {0, bal}
end

if phase ~= 'cards' then return redis.error_reply('create_cards: unknown phase ' .. tostring(phase)) end
local value, disp, exp, pinkey = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local first = 9
local count = (#ARGV - first + 1) / 2
if global then
  for i = 0, count - 1 do
    local num = ARGV[first + i * 2]
    if redis.call('EXISTS', 'card:' .. num) == 1 then return {5, num} end
  end
end
local st = 'active'
if value <= 0 then st = (disp == '1') and 'exhausted' or 'empty' end
local anion = (value >= threshold_of(res) and st ~= 'exhausted') and '1' or '0'
local now = redis.call('TIME')[1]
local bal = fmt(value)
local owner = res .. ':' .. cust
local numbers = {}
for i = 0, count - 1 do
  local b = first + i * 2
  local num, pin = ARGV[b], ARGV[b + 1]
  redis.call('HSET', tag .. ':k:' .. num, 'cust', cust, 'res', res, 'bal', bal,
    'value', bal, 'disp', disp, 'st', st, 'blk', '0', 'anion', anion,
    'exp', exp, 'batch', batch, 'pin', pin, 'pinkey', pinkey, 'pinfail', '0', 'pinlock', '0',
    'pinblk', '0', 'created', now)
  if global then redis.call('SET', 'card:' .. num, owner) end
  numbers[#numbers + 1] = num
  -- the sets grow by one SADD per 1,000 members (unpack's stack limit is ~8,000)
  if #numbers == 1000 or i == count - 1 then
    redis.call('SADD', ckey .. ':cards', unpack(numbers))
    if batch ~= '' then redis.call('SADD', tag .. ':batch:' .. batch, unpack(numbers)) end
    numbers = {}
  end
end
if global then redis.call('INCR', 'accounts:generation') end
return {0, ''}
