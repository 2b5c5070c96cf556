-- release_hold: the customer gives an active hold back; freed seats go to the
-- waitlist first.
-- Input:
--   KEYS[1..8], ARGV[1..3]   see includes/context.lua
--   ARGV[4]  hold id
-- Output:
--   {1, next_wake}   released
--   {-1}             show not loaded
--   {-4, status}     hold not active (status: expired, released, confirmed,
--                    confirming, or "" when unknown)
--@include context
--@include holds
--@include waitlist
--@include settle
if not is_loaded() then return -1 end
begin()
settle_due()
local status = redis.call('HGET', hold_key(ARGV[4]), 'status')
if status ~= 'active' then
  return finish({-4, status or ''})
end
end_hold(ARGV[4], 'released', 'holds_unpaid')
grant_waiters()
return finish({1})
