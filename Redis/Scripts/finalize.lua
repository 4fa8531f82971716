-- Settles reservations once the bucket step is known, guarded so a repeat or a stale call changes nothing.
-- KEYS[1] the shard's buyers set, then 2 per purchase: the user's unit counter, the request record.
-- ARGV, 5 per purchase: action ('D' done, 'X' release), quantity, the record expected now, the new record, user id.
-- 'D' marks the record done (keeps its TTL); 'X' gives the units back and forgets the request, so a retry of a
-- sold-out request is a fresh attempt. Returns the number of records changed.
local changed = 0
for i = 1, (#KEYS - 1) / 2 do
  local user_key, request_key = KEYS[2 * i], KEYS[2 * i + 1]
  local a = (i - 1) * 5
  local action, qty, expected, replacement, user_id = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  if redis.call('GET', request_key) == expected then
    if action == 'D' then
      redis.call('SET', request_key, replacement, 'KEEPTTL')
    else
      if redis.call('DECRBY', user_key, qty) <= 0 then
        redis.call('SREM', KEYS[1], user_id)
      end
      redis.call('DEL', request_key)
    end
    changed = changed + 1
  end
end
return changed
