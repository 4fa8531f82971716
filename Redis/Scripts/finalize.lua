-- Settles reservations once the bucket step is known, guarded so a repeat or a stale call changes nothing.
-- KEYS[1] the shard's unit counters (hash user id -> units), KEYS[2] the shard's request records (hash).
-- ARGV, 6 per purchase: action ('D' done, 'X' release), quantity, the record expected now, the new record, user id,
-- request id.
-- 'D' marks the record done (the hash keeps its TTL); 'X' gives the units back and forgets the request, so a retry of
-- a sold-out request is a fresh attempt, and a user left with no units is no longer one of the shard's buyers.
-- Returns the number of records changed.
local changed = 0
for i = 1, #ARGV / 6 do
  local a = (i - 1) * 6
  local action, qty, expected, replacement, user_id = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local field = #user_id .. ':' .. user_id .. ':' .. ARGV[a + 6]
  if redis.call('HGET', KEYS[2], field) == expected then
    if action == 'D' then
      redis.call('HSET', KEYS[2], field, replacement)
    else
      if redis.call('HINCRBY', KEYS[1], user_id, -tonumber(qty)) <= 0 then
        redis.call('HDEL', KEYS[1], user_id)
      end
      redis.call('HDEL', KEYS[2], field)
    end
    changed = changed + 1
  end
end
return changed
