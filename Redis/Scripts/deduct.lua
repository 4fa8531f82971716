-- Deducts a batch of purchases from one bucket, each applied on its own (all-or-nothing per purchase).
-- Every key is in the bucket's hash slot, so this runs unchanged on Redis Cluster.
-- KEYS[1] stock (integer string), KEYS[2] deduction log (stream), KEYS[3] the transaction's fence (see fence.lua),
-- KEYS[3+i] marker "order i was deducted here".
-- ARGV[1] bucket index, ARGV[2] marker TTL in seconds, ARGV[3] the transaction id (in each log entry, as in
-- purchase.lua), then 4 per purchase: order id, user id, request id, quantity.
-- Returns { remaining, r1, r2, ... } with r = the log entry id (a string) when deducted, 2 already deducted,
-- 3 voided by a replay (void.lua: this order id may never be deducted), 0 not enough stock, -2 bad quantity;
-- or { -1 } when the stock key is missing (the bucket was never initialised or Redis lost it), { -3 } when the
-- check-back already answered for this transaction (fence 'X' or 'F'; 'C' is an earlier batch of it).
local fence = redis.call('GET', KEYS[3])
if fence and fence ~= 'C' then
  return { -3 }
end
local stock = redis.call('GET', KEYS[1])
if not stock then
  return { -1 }
end
-- Stock is written only by INCRBY/DECRBY/SET of integers, so this is an exact integer below 2^53.
stock = tonumber(stock)
local bucket = ARGV[1]
local ttl = ARGV[2]
local tx = ARGV[3]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local results = { 0 }
local n = #KEYS - 3
local deducted = false
for i = 1, n do
  local a = 3 + (i - 1) * 4
  local order_id, user_id, request_id, qty_text = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  -- Plain decimal digits only: tonumber would also accept '1e3' or '0x10', which DECRBY then refuses mid-batch.
  local qty = string.match(qty_text, '^[1-9][0-9]?[0-9]?[0-9]?[0-9]?[0-9]?[0-9]?$') and tonumber(qty_text)
  local marker = KEYS[3 + i]
  -- All checks of this purchase come before any of its writes.
  local mark = redis.call('GET', marker)
  if not qty or qty > 1000000 then
    results[i + 1] = -2
  elseif mark == 'F' then
    results[i + 1] = 3
  elseif mark then
    results[i + 1] = 2
  elseif stock < qty then
    results[i + 1] = 0
  else
    stock = redis.call('DECRBY', KEYS[1], qty_text)
    deducted = true
    redis.call('SET', marker, '1', 'EX', ttl)
    results[i + 1] = redis.call('XADD', KEYS[2], '*', 'o', order_id, 'u', user_id, 'r', request_id, 'q', qty_text, 'b', bucket, 't', now, 'x', tx)
  end
end
if deducted then
  redis.call('SET', KEYS[3], 'C', 'EX', ttl)
end
results[1] = stock
return results
