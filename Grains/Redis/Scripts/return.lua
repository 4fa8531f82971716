-- Gives a cancelled or expired order's units back to a bucket, once.
-- KEYS[1] stock, KEYS[2] return marker of the order in this bucket. ARGV[1] quantity, ARGV[2] marker TTL seconds.
-- Returns the bucket's remaining stock, or -1 when the stock key is missing.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return tonumber(redis.call('GET', KEYS[1]) or '-1')
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local stock = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return stock
