-- confirm_abort: the payment failed (or was undone); the hold goes back to
-- active until its own deadline, or ends now if that has passed, its seats
-- going to waiters. Settles first, as every script does: a decline after the
-- show's start ends the queue rather than granting to it.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  hold id
--   ARGV[5]  fence of the confirm that failed
-- Output:
--   1 hold active again, 2 hold ended (deadline passed), 0 not this confirm's pin
-- Idempotent: a second run with the same fence answers the first run's outcome.
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
begin()
settle_due()
local key = hold_key(ARGV[4])
local hold = redis.call('HMGET', key, 'status', 'fence', 'expires_at', 'aborted')
if hold[4] and string.match(hold[4], '^([^:]*)') == ARGV[5] then
  return finish(tonumber(string.match(hold[4], ':(%d+)$')))
end
if hold[1] ~= 'confirming' or hold[2] ~= ARGV[5] then return finish(0) end
local result = 1
if tonumber(hold[3]) <= NOW then
  end_hold(ARGV[4], 'expired', 'holds_unpaid')
  grant_waiters()
  result = 2
else
  redis.call('HSET', key, 'status', 'active')
  redis.call('HDEL', key, 'fence', 'pinned_until', 'attempt')
  redis.call('ZADD', K_DEADLINES, hold[3], ARGV[4])
  FIRST_DEADLINE_KNOWN = false
end
redis.call('HSET', key, 'aborted', ARGV[5] .. ':' .. result)
return finish(result)
