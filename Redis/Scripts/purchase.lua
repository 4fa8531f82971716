-- A batch of purchases by users whose home is this bucket: idempotency record, per-user limit, stock, log entry, all
-- in one script in one hash slot. A bucket's slot also holds the quota shard of the same index (one hash tag), so
-- the user's counter read here is the one the overflow path (reserve.lua) reads and writes.
-- KEYS[1] stock, KEYS[2] deduction log (stream), KEYS[3] the shard's unit counters (hash user id -> units),
-- KEYS[4] the shard's request records (hash, field "<#user>:<user>:<request>"), KEYS[5] the transaction's fence.
-- ARGV[1] bucket index, ARGV[2] TTL in seconds of the counters and records (0 = none: a sale without an end keeps
-- them until it is closed), ARGV[3] per-user limit, ARGV[4] the fence's TTL in seconds, ARGV[5] the transaction id
-- (each log entry carries it: the check-back finds a transaction's orders by it), then 4 per purchase: order id,
-- user id, request id, quantity.
-- Returns { remaining, r1, r2, ... } with r = the log entry id ("ms-seq") when a new order was created,
-- 'E' .. record when the request was seen before (the stored record), 'L' limit exceeded, 'S' not enough stock in
-- this bucket, 'Q' bad quantity;
-- or { -1 } when the stock key is missing, { -3 } when the check-back already answered for this transaction (the
-- fence: 'X' rolled back, 'F' committed and closed; a script that reaches Redis after that deducts nothing). A fence
-- 'C' is an earlier batch of the same transaction (a bucket's transaction may span several batches): go on.
-- Reads and writes are one HMGET and one HSET per hash for the whole batch: the cost of a purchase is then its
-- XADD and its share of a few calls, not six commands of its own.
local fence = redis.call('GET', KEYS[5])
if fence and fence ~= 'C' then
  return { -3 }
end
local stock = redis.call('GET', KEYS[1])
if not stock then
  return { -1 }
end
stock = tonumber(stock)
local bucket, ttl, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local tx = ARGV[5]
local n = (#ARGV - 5) / 4
local users, fields = {}, {}
for i = 1, n do
  local user_id = ARGV[5 + (i - 1) * 4 + 2]
  users[i] = user_id
  fields[i] = #user_id .. ':' .. user_id .. ':' .. ARGV[5 + (i - 1) * 4 + 3]
end
local records = redis.call('HMGET', KEYS[4], unpack(fields))
local held = redis.call('HMGET', KEYS[3], unpack(users))
-- What this batch wrote so far: a user or a request id may appear twice in one batch.
local held_now, records_now = {}, {}
local unit_writes, record_writes, w = {}, {}, 0
local results = { 0 }
local taken = 0
for i = 1, n do
  local a = 5 + (i - 1) * 4
  local order_id, user_id, request_id, qty_text = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local qty = string.match(qty_text, '^[1-9][0-9]?[0-9]?[0-9]?[0-9]?[0-9]?[0-9]?$') and tonumber(qty_text)
  local field = fields[i]
  -- All checks of this purchase come before any of its writes.
  local record = records_now[field] or records[i]
  if record then
    results[i + 1] = 'E' .. record
  elseif not qty or qty > 1000000 then
    results[i + 1] = 'Q'
  else
    local used = held_now[user_id] or tonumber(held[i] or '0')
    if used + qty > limit then
      results[i + 1] = 'L'
    elseif stock < qty then
      results[i + 1] = 'S'
    else
      stock = stock - qty
      taken = taken + qty
      used = used + qty
      held_now[user_id] = used
      -- The record is the replay's answer and the check-back's proof: orderId|quantity|D|bucket|createdMs.
      record = order_id .. '|' .. qty_text .. '|D|' .. bucket .. '|' .. now
      records_now[field] = record
      w = w + 1
      unit_writes[2 * w - 1], unit_writes[2 * w] = user_id, used
      record_writes[2 * w - 1], record_writes[2 * w] = field, record
      results[i + 1] = redis.call('XADD', KEYS[2], '*', 'o', order_id, 'u', user_id, 'r', request_id, 'q', qty_text, 'b', bucket, 't', now, 'x', tx)
    end
  end
end
-- One write of the stock, the counters, the records, the fence and the TTLs per batch, not per purchase.
if taken > 0 then
  stock = redis.call('DECRBY', KEYS[1], taken)
  -- A user twice in the batch is written twice, the later (larger) count last.
  redis.call('HSET', KEYS[3], unpack(unit_writes))
  redis.call('HSET', KEYS[4], unpack(record_writes))
  -- The fence only has to outlive the transaction's check-back: the retention is enough.
  redis.call('SET', KEYS[5], 'C', 'EX', ARGV[4])
  if ttl ~= '0' then
    redis.call('EXPIRE', KEYS[3], ttl)
    redis.call('EXPIRE', KEYS[4], ttl)
  end
end
results[1] = stock
return results
