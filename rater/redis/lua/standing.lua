-- Read only: one reseller's standing for the portal's overview (docs/DESIGN.md section 1).
-- ARGV: reseller id, how many customers at or below zero to name
-- Returns {0} when the reseller does not exist, else
--   {1, credit, customers' positive balances (coverage_total, the sum adjust.lua checks),
--    number of customers, number at or below zero, {id, balance, id, balance, ...} of the
--    ARGV[2] lowest of those}
-- One call instead of a pipelined read of every customer hash: 10,000 customers cost about
-- 150 ms of redis-py per page, in Python, and a few ms of Redis here.
local res, named = ARGV[1], tonumber(ARGV[2])
local credit = redis.call('HGET', K.reseller(res), 'bal')
if not credit then return {0} end
local ids = redis.call('SMEMBERS', K.customers_of(res))
local stopped = {}
for _, cid in ipairs(ids) do
  local bal = tonumber(redis.call('HGET', K.customer(res, cid), 'bal') or '0')
  if bal <= 0 then stopped[#stopped + 1] = {bal, cid} end
end
table.sort(stopped, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local listed = {}
for i = 1, math.min(named, #stopped) do
  listed[#listed + 1] = stopped[i][2]
  listed[#listed + 1] = fmt(stopped[i][1])
end
return {1, credit, fmt(coverage_total(res)), #ids, #stopped, listed}
