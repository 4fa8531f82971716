-- Settles whether an order was deducted in this bucket, for good: a replay that finds its request still reserved
-- asks every bucket. If the order was deducted here, its marker says '1'. If not, the marker is set to 'F', and
-- deduct.lua refuses that order id from then on, so an attempt still queued or held on the way to Redis can never
-- land after the replay moved on (a second unit for one order, or a deduction without a reservation).
-- KEYS[1] the order's marker in this bucket. ARGV[1] marker TTL in seconds.
-- Returns 1 when the order was deducted here, 0 when it was not and now never will be.
local marker = redis.call('GET', KEYS[1])
if marker == '1' then
  return 1
end
if not marker then
  redis.call('SET', KEYS[1], 'F', 'EX', ARGV[1])
end
return 0
