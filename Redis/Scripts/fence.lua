-- The check-back's answer for one transaction, made final: atomically in the bucket's slot, either the transaction's
-- script has run (its fence says 'C') or it never will (the fence is set to 'X', and purchase.lua and deduct.lua
-- refuse a transaction whose fence exists). No timing argument is needed: a script that reaches Redis late finds
-- the fence and deducts nothing.
-- KEYS[1] the transaction's fence, then one probe key per order of the half message.
-- ARGV[1] fence TTL in seconds, then 2 per probe: the hash field to read ('' = the key is a string), and the prefix
-- its value has when this order was deducted.
-- Returns { 'X' } rolled back, or { 'C', p1, p2, ... } with p = 1 when order i was deducted, else 0.
local state = redis.call('GET', KEYS[1])
if not state then
  redis.call('SET', KEYS[1], 'X', 'EX', ARGV[1])
  return { 'X' }
end
if state ~= 'C' then
  return { 'X' }
end
local results = { 'C' }
for i = 2, #KEYS do
  local field, prefix = ARGV[2 * i - 2], ARGV[2 * i - 1]
  local value
  if field == '' then
    value = redis.call('GET', KEYS[i])
  else
    value = redis.call('HGET', KEYS[i], field)
  end
  if value and string.sub(value, 1, #prefix) == prefix then
    results[i] = 1
  else
    results[i] = 0
  end
end
return results
