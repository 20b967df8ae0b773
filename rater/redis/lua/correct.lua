-- Re-rating corrections: each item changes the charge of one CDR revision by a delta, exactly
-- once per key (a second call with the same key changes nothing).
-- ARGV: count, may touch global keys (1|0), then per item 6 values:
--       key, reseller, customer ('' none), card ('' none), price delta, cost delta (micro;
--       positive charges more, negative refunds)
-- Returns {flags (one byte per item: 1 applied, 0 already applied), events}
local n, global = tonumber(ARGV[1]), ARGV[2] == '1'
local flags, events = {}, {}
for i = 0, n - 1 do
  local b = 3 + i * 6
  local key, res, cust, card = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local dprice, dcost = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  local tag = tagof(res)
  if redis.call('SET', tag .. ':corr:' .. key, '1', 'NX') then
    flags[#flags + 1] = 1
    if res ~= '' and dcost ~= 0 then
      local bal = redis.call('HINCRBY', tag .. ':res', 'bal', fmt(-dcost))
      settle_party(res, tag .. ':res', 'reseller', res, bal, events)
    end
    if cust ~= '' and dprice ~= 0 then
      local bal = redis.call('HINCRBY', tag .. ':c:' .. cust, 'bal', fmt(-dprice))
      settle_party(res, tag .. ':c:' .. cust, 'customer', cust, bal, events)
    end
    if card ~= '' and dprice ~= 0 then
      local bal = redis.call('HINCRBY', tag .. ':k:' .. card, 'bal', fmt(-dprice))
      settle_card(res, card, bal, threshold_of(res), global, events)
    end
  else
    flags[#flags + 1] = 0
  end
end
local out = {}
for i = 1, #flags do out[i] = string.char(flags[i]) end
return {table.concat(out), events}
