-- release_hold: the customer gives an active hold back; freed seats go to the
-- waitlist first.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  hold id
-- Output:
--   {1}              released (now, or by an earlier run: releasing is idempotent)
--   {-1}             show not loaded
--   {-4, status}     hold not active (status: expired, confirmed, confirming while
--                    a confirm's pin is live, or "" when unknown)
-- A confirming hold whose pin lapsed is active again (its confirm is presumed dead,
-- as confirm_begin presumes): it is released, and the stale confirm's check fails.
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
begin()
settle_due()
local hold = redis.call('HMGET', hold_key(ARGV[4]), 'status', 'pinned_until')
local status = hold[1]
if status == 'released' then return finish({1}) end
local lapsed = status == 'confirming' and tonumber(hold[2]) <= NOW
if status ~= 'active' and not lapsed then
  return finish({-4, status or ''})
end
end_hold(ARGV[4], 'released', 'holds_unpaid')
grant_waiters()
return finish({1})
