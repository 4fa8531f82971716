-- Takes up to ARGV[1] units out of a bucket for a re-bucketing transfer; a negative ARGV[1] removes the bucket: it
-- takes all of them and sets the removal mark, in the same script, so a return (return.lua) either lands before the
-- take and moves with it, or finds the mark and goes to a live bucket.
-- KEYS[1] stock, KEYS[2] transfer record, KEYS[3] removal mark. ARGV[1] amount, ARGV[2] record TTL in seconds.
-- Idempotent: a repeated transfer id returns what the first call took. Returns { taken, remaining },
-- or { -1, -1 } when the stock key is missing.
local done = redis.call('GET', KEYS[2])
local stock = redis.call('GET', KEYS[1])
if done then
  return { tonumber(done), tonumber(stock or '0') }
end
if not stock then
  return { -1, -1 }
end
stock = tonumber(stock)
local amount = tonumber(ARGV[1])
if amount < 0 then
  redis.call('SET', KEYS[3], '1')
end
if amount < 0 or amount > stock then
  amount = stock
end
if amount > 0 then
  stock = redis.call('DECRBY', KEYS[1], amount)
end
redis.call('SET', KEYS[2], amount, 'EX', ARGV[2])
return { amount, stock }
