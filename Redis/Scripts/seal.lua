-- The check-back's answer for a transaction that may span several batches of one bucket (an epoch), made final in
-- the bucket's slot. No batch of it has deducted (no fence): it is rolled back ('X') and no later batch of it may
-- deduct. Some batch has ('C'): it is closed ('F'), so no later batch of it may deduct either, and the orders it
-- holds are exactly the deduction log's entries that carry its id, none of which can appear after this script.
-- KEYS[1] the transaction's fence. ARGV[1] the fence's TTL in seconds (for a rollback's new fence).
-- Returns 'X' rolled back, or 'F' committed (its orders are in the log, or already published and trimmed).
local state = redis.call('GET', KEYS[1])
if not state then
  redis.call('SET', KEYS[1], 'X', 'EX', ARGV[1])
  return 'X'
end
if state == 'C' then
  redis.call('SET', KEYS[1], 'F', 'KEEPTTL')
  return 'F'
end
return state
