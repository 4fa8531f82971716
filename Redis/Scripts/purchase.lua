-- A batch of purchases by users whose home is this bucket: idempotency record, per-user limit, stock, log entry, all
-- in one script in one hash slot. A bucket's slot also holds the quota shard of the same index (one hash tag), so
-- the user's counter read here is the one the overflow path (reserve.lua) reads and writes.
-- KEYS[1] stock, KEYS[2] deduction log (stream), KEYS[3] buyers set, KEYS[4] the transaction's fence,
-- then 2 per purchase: the user's unit counter, the request record.
-- ARGV[1] bucket index, ARGV[2] TTL in seconds of the counter, record and buyers set (0 = none: a sale without an end
-- keeps them until it is closed), ARGV[3] per-user limit, ARGV[4] the fence's TTL in seconds, then 4 per purchase:
-- order id, user id, request id, quantity.
-- Returns { remaining, r1, r2, ... } with r = the log entry id ("ms-seq") when a new order was created,
-- 'E' .. record when the request was seen before (the stored record), 'L' limit exceeded, 'S' not enough stock in
-- this bucket, 'Q' bad quantity;
-- or { -1 } when the stock key is missing, { -3 } when the check-back already rolled this transaction back (the
-- fence: a script that reaches Redis after that deducts nothing).
if redis.call('EXISTS', KEYS[4]) == 1 then
  return { -3 }
end
local stock = redis.call('GET', KEYS[1])
if not stock then
  return { -1 }
end
stock = tonumber(stock)
local bucket, ttl, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local function keep(key, value)
  if ttl > 0 then
    redis.call('SET', key, value, 'EX', ttl)
  else
    redis.call('SET', key, value)
  end
end
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local results = { 0 }
local taken = 0
local n = (#KEYS - 4) / 2
for i = 1, n do
  local user_key, request_key = KEYS[3 + 2 * i], KEYS[4 + 2 * i]
  local a = 4 + (i - 1) * 4
  local order_id, user_id, request_id, qty_text = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local qty = string.match(qty_text, '^[1-9][0-9]?[0-9]?[0-9]?[0-9]?[0-9]?[0-9]?$') and tonumber(qty_text)
  -- All checks of this purchase come before any of its writes.
  local record = redis.call('GET', request_key)
  if record then
    results[i + 1] = 'E' .. record
  elseif not qty or qty > 1000000 then
    results[i + 1] = 'Q'
  else
    local used = tonumber(redis.call('GET', user_key) or '0')
    if used + qty > limit then
      results[i + 1] = 'L'
    elseif stock < qty then
      results[i + 1] = 'S'
    else
      stock = stock - qty
      taken = taken + qty
      keep(user_key, used + qty)
      -- The record is the replay's answer and the check-back's proof: orderId|quantity|D|bucket|createdMs.
      keep(request_key, order_id .. '|' .. qty_text .. '|D|' .. bucket .. '|' .. now)
      redis.call('SADD', KEYS[3], user_id)
      results[i + 1] = redis.call('XADD', KEYS[2], '*', 'o', order_id, 'u', user_id, 'r', request_id, 'q', qty_text, 'b', bucket, 't', now)
    end
  end
end
-- One write of the stock, the fence and the buyers' TTL per batch, not per purchase.
if taken > 0 then
  stock = redis.call('DECRBY', KEYS[1], taken)
  -- The fence only has to outlive the transaction's check-back: the retention is enough.
  redis.call('SET', KEYS[4], 'C', 'EX', ARGV[4])
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[3], ttl)
  end
end
results[1] = stock
return results
