-- leave_waitlist: a waiter leaves at once; seats it had claimed may now serve
-- the entries behind it.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  entry id
-- Output:
--   {1}            left (status "cancelled"), now or by an earlier run (idempotent)
--   {-1}           show not loaded
--   {-4, status}   not waiting (granted, impossible, expired, "" unknown)
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
begin()
settle_due()
local status = redis.call('HGET', entry_key(ARGV[4]), 'status')
if status == 'cancelled' then return finish({1}) end
if status ~= 'waiting' then
  return finish({-4, status or ''})
end
end_entry(ARGV[4], 'cancelled', nil)
grant_waiters()
return finish({1})
