-- Reserves per-user quota for a batch of purchases in one quota shard, and answers replays.
-- Why a separate shard: a script may only touch keys of one hash slot, and a user's purchases can land in any
-- bucket. Each user's counter lives in exactly one quota shard (hash of the user id, fixed for the sale), so the
-- limit is checked in one place whichever bucket finally serves the purchase.
-- KEYS[1] the shard's unit counters (hash user id -> units; its fields are the users holding units: once the sale is
-- sold out, only their requests can be replays, so the grain answers everyone else from memory), KEYS[2] the
-- shard's request records (hash, field "<#user>:<user>:<request>").
-- ARGV[1] per-user limit, ARGV[2] TTL in seconds (0 = none: a sale without an end keeps its records until closed),
-- ARGV[3] '1' = only look up records (the sale is sold out), then 5 per purchase: quantity, new order id, now in ms,
-- user id, request id.
-- Returns one entry per purchase: 1 reserved, 0 limit exceeded, 3 no record (look-up mode),
-- or the existing record string (a replay).
local limit = tonumber(ARGV[1])
local ttl = ARGV[2]
local lookup_only = ARGV[3] == '1'
local n = (#ARGV - 3) / 5
local users, fields = {}, {}
for i = 1, n do
  local a = 3 + (i - 1) * 5
  users[i] = ARGV[a + 4]
  fields[i] = #ARGV[a + 4] .. ':' .. ARGV[a + 4] .. ':' .. ARGV[a + 5]
end
local records = redis.call('HMGET', KEYS[2], unpack(fields))
local held = lookup_only and {} or redis.call('HMGET', KEYS[1], unpack(users))
local held_now, records_now = {}, {}
local unit_writes, record_writes, w = {}, {}, 0
local results = {}
for i = 1, n do
  local a = 3 + (i - 1) * 5
  local qty, order_id, now, user_id = tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local field = fields[i]
  local record = records_now[field] or records[i]
  if record then
    results[i] = record
  elseif lookup_only then
    results[i] = 3
  else
    local used = held_now[user_id] or tonumber(held[i] or '0')
    if used + qty > limit then
      results[i] = 0
    else
      used = used + qty
      held_now[user_id] = used
      record = order_id .. '|' .. qty .. '|R|-1|' .. now
      records_now[field] = record
      w = w + 1
      unit_writes[2 * w - 1], unit_writes[2 * w] = user_id, used
      record_writes[2 * w - 1], record_writes[2 * w] = field, record
      results[i] = 1
    end
  end
end
-- One write per hash for the batch; the TTLs are pushed back once per batch, not once per purchase.
if w > 0 then
  redis.call('HSET', KEYS[1], unpack(unit_writes))
  redis.call('HSET', KEYS[2], unpack(record_writes))
  if ttl ~= '0' then
    redis.call('EXPIRE', KEYS[1], ttl)
    redis.call('EXPIRE', KEYS[2], ttl)
  end
end
return results
