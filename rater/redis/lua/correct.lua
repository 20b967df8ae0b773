-- Re-rating corrections: each item changes the charge of one CDR revision by a delta, exactly
-- once per key (a second call with the same key changes nothing).
-- ARGV: count, may touch global keys (1|0), then per item 6 values:
--       key, reseller, customer ('' none), card ('' none) (ids in key form), price delta,
--       cost delta (micro; positive charges more, negative refunds; |delta| <= MAX_AMOUNT)
-- Returns {codes (one byte per item, CORRECT: APPLIED, ALREADY_APPLIED, or OUT_OF_RANGE when a
--          balance would leave +-MAX_AMOUNT: nothing of that item changed), events}
local n, global = tonumber(ARGV[1]), ARGV[2] == '1'
local codes, events = {}, {}

local function balance(key)
  return tonumber(redis.call('HGET', key, 'bal') or '0')
end

for i = 0, n - 1 do
  local b = 3 + i * 6
  local key, res, cust, card = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local dprice, dcost = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  local rkey, ckey, kkey = K.reseller(res), K.customer(res, cust), K.card(res, card)
  local mark = K.correction(res, key)
  local code = CORRECT.APPLIED
  if redis.call('EXISTS', mark) == 1 then
    code = CORRECT.ALREADY_APPLIED
  elseif (res ~= '' and dcost ~= 0 and not within(balance(rkey), dcost))
      or (cust ~= '' and dprice ~= 0 and not within(balance(ckey), dprice))
      or (card ~= '' and dprice ~= 0 and not within(balance(kkey), dprice)) then
    code = CORRECT.OUT_OF_RANGE
  else
    redis.call('SET', mark, '1')
    if res ~= '' and dcost ~= 0 then
      local bal = redis.call('HINCRBY', rkey, 'bal', fmt(-dcost))
      settle_party(res, rkey, 'reseller', res, bal, events)
    end
    if cust ~= '' and dprice ~= 0 then
      local bal = redis.call('HINCRBY', ckey, 'bal', fmt(-dprice))
      settle_party(res, ckey, 'customer', cust, bal, events)
    end
    if card ~= '' and dprice ~= 0 then
      local bal = redis.call('HINCRBY', kkey, 'bal', fmt(-dprice))
      settle_card(res, card, bal, threshold_of(res), global, events)
    end
  end
  codes[#codes + 1] = string.char(code)
end
return {table.concat(codes), events}
