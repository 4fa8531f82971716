-- Adds ARGV[1] units to a bucket for a re-bucketing transfer; creates the stock key of a new bucket, and clears the
-- removal mark of a bucket that a grow brings back, so returns go to it again.
-- KEYS[1] stock, KEYS[2] transfer record, KEYS[3] removal mark. ARGV[1] amount (>= 0), ARGV[2] record TTL in seconds.
-- Idempotent per transfer id. Returns the bucket's remaining stock.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return tonumber(redis.call('GET', KEYS[1]) or '0')
end
local stock = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
redis.call('DEL', KEYS[3])
return stock
