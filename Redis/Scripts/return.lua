-- Gives a cancelled or expired order's units back to a bucket, once; a bucket that re-bucketing removed takes none.
-- KEYS[1] stock, KEYS[2] return marker of the order in this bucket, KEYS[3] the bucket's removal mark (take.lua).
-- ARGV[1] quantity, ARGV[2] marker TTL seconds, ARGV[3] the live bucket for the units if this one was removed (-1: none).
-- Returns { 0, stock } when the units are in this bucket (now or by an earlier call); { 1, stock, bucket } when they
-- go to that bucket instead (fixed by the first call that named it, so every retry follows the same way and the
-- target's own marker keeps the return single); { 2, stock } when this bucket was removed and ARGV[3] named none;
-- or { -1 } when the stock key is missing.
local marker = redis.call('GET', KEYS[2])
local stock = redis.call('GET', KEYS[1])
if marker and string.sub(marker, 1, 1) == '>' then
  return { 1, tonumber(stock or '0'), tonumber(string.sub(marker, 2)) }
end
if not stock then
  return { -1 }
end
if marker then
  return { 0, tonumber(stock) }
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  if tonumber(ARGV[3]) < 0 then
    return { 2, tonumber(stock) }
  end
  redis.call('SET', KEYS[2], '>' .. ARGV[3], 'EX', ARGV[2])
  return { 1, tonumber(stock), tonumber(ARGV[3]) }
end
stock = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return { 0, stock }
