-- confirm_abort: the payment failed (or was undone); the hold goes back to
-- active until its own deadline, or ends now if that has passed, its seats
-- going to waiters.
-- Input:
--   KEYS[1..8], ARGV[1..3]   see includes/context.lua
--   ARGV[4]  hold id
--   ARGV[5]  fence of the confirm that failed
-- Output:
--   1 hold active again, 2 hold ended (deadline passed), 0 not this confirm's pin
--@include context
--@include holds
--@include waitlist
--@include settle
if not is_loaded() then return -1 end
begin()
local key = hold_key(ARGV[4])
local hold = redis.call('HMGET', key, 'status', 'fence', 'expires_at')
if hold[1] ~= 'confirming' or hold[2] ~= ARGV[5] then return finish(0) end
local result = 1
if tonumber(hold[3]) <= NOW then
  end_hold(ARGV[4], 'expired', 'holds_unpaid')
  grant_waiters()
  result = 2
else
  redis.call('HSET', key, 'status', 'active')
  redis.call('HDEL', key, 'fence', 'pinned_until')
  redis.call('ZADD', K_DEADLINES, hold[3], ARGV[4])
  FIRST_DEADLINE_KNOWN = false
end
settle_due()
return finish(result)
