-- Redis Cluster: claims the (switch, cdr_id)s of one shard for the messages that carry them,
-- before the per-slot debit calls (rater/redis/claims.py), so a CDR is charged at most once
-- across resellers although each reseller's records live in its own slot.
-- KEYS[1]: a key of the shard's slot (routing only).  ARGV: CLAIM_ARG (see the header).
-- A claim is a field of `{dc:<shard>}:<bucket>` (the buckets of debit.lua's records) holding
-- STORED (message identity, outcome CLAIMED, fingerprint) followed by the key form of the
-- reseller the CDR was claimed for.
-- Returns the claims found, in entry order, packed as (row i4, length i4, claim): the caller
-- tells a replay of the same message (its own claim: goes on) from another message's copy.
local window, n = tonumber(ARGV[CLAIM_ARG.window]), tonumber(ARGV[CLAIM_ARG.count])
local shard = ARGV[CLAIM_ARG.shard]
local resellers = unpack_strings(ARGV[CLAIM_ARG.resellers])
local entries, fieldblob = ARGV[CLAIM_ARG.entries], ARGV[CLAIM_ARG.fields]
local now = tonumber(redis.call('TIME')[1])
local bucket = math.floor(now / window)
local cur, prev = K.claims(shard, fmt(bucket)), K.claims(shard, fmt(bucket - 1))
local CHUNK = 1000
local CLAIM_SUFFIX = string.char(CLAIMED, 0)

local ROW, IDENT, FP, RES, FIELD = {}, {}, {}, {}, {}
local pos, fpos = 1, 1
for j = 1, n do
  local flen
  ROW[j], IDENT[j], FP[j], RES[j], flen, pos = struct.unpack(CLAIM.UNPACK, entries, pos)
  FIELD[j] = string.sub(fieldblob, fpos, fpos + flen - 1)
  fpos = fpos + flen
end

local found = {}
local function fetch(key)
  if redis.call('EXISTS', key) == 0 then return end
  for first = 1, n, CHUNK do
    local last = math.min(first + CHUNK - 1, n)
    local got = redis.call('HMGET', key, unpack(FIELD, first, last))
    for j = first, last do
      if got[j - first + 1] and not found[j] then found[j] = got[j - first + 1] end
    end
  end
end
fetch(cur)
fetch(prev)

local out, new, fresh = {}, {}, {}
for j = 1, n do
  local v = fresh[FIELD[j]] or found[j]
  if v then
    out[#out + 1] = struct.pack(CLAIM_FOUND.UNPACK, ROW[j], #v) .. v
  else
    v = IDENT[j] .. CLAIM_SUFFIX .. FP[j] .. resellers[RES[j]]
    fresh[FIELD[j]] = v
    new[#new + 1] = FIELD[j]
    new[#new + 1] = v
  end
end
for first = 1, #new, 2 * CHUNK do
  redis.call('HSET', cur, unpack(new, first, math.min(first + 2 * CHUNK - 1, #new)))
end
if #new > 0 then redis.call('EXPIREAT', cur, fmt((bucket + 2) * window)) end
return table.concat(out)
