-- Reserves per-user quota for a batch of purchases in one quota shard, and answers replays.
-- Why a separate shard: a script may only touch keys of one hash slot, and a user's purchases can land in any
-- bucket. Each user's counter lives in exactly one quota shard (hash of the user id, fixed for the sale), so the
-- limit is checked in one place whichever bucket finally serves the purchase.
-- KEYS[1] the shard's buyers (a set of users holding units: once the sale is sold out, only their requests can be
-- replays, so the grain answers everyone else from memory), then 2 per purchase: the user's unit counter, the
-- request record.
-- ARGV[1] per-user limit, ARGV[2] TTL in seconds (0 = none: a sale without an end keeps its records until closed), ARGV[3] '1' = only look up records (the sale is sold out),
-- then 4 per purchase: quantity, new order id, now in ms, user id.
-- Returns one entry per purchase: 1 reserved, 0 limit exceeded, 3 no record (look-up mode),
-- or the existing record string (a replay).
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local function keep(key, value)
  if ttl > 0 then
    redis.call('SET', key, value, 'EX', ttl)
  else
    redis.call('SET', key, value)
  end
end
local lookup_only = ARGV[3] == '1'
local results = {}
-- The buyers set's TTL is pushed back once per batch, not once per purchase: one write (and one AOF entry) less each.
local added = false
local n = (#KEYS - 1) / 2
for i = 1, n do
  local user_key, request_key = KEYS[2 * i], KEYS[2 * i + 1]
  local a = 3 + (i - 1) * 4
  local qty, order_id, now, user_id = tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local record = redis.call('GET', request_key)
  if record then
    results[i] = record
  elseif lookup_only then
    results[i] = 3
  else
    local used = tonumber(redis.call('GET', user_key) or '0')
    if used + qty > limit then
      results[i] = 0
    else
      -- One SET instead of INCRBY + EXPIRE: the script is atomic, so the value read above is still current.
      keep(user_key, used + qty)
      keep(request_key, order_id .. '|' .. qty .. '|R|-1|' .. now)
      redis.call('SADD', KEYS[1], user_id)
      added = true
      results[i] = 1
    end
  end
end
if added and ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return results
