-- hold_status: one hold, after settling due deadlines.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  hold id
-- Output:
--   {} when unknown, else {status, seats, customer, expires_at, booking_id, now}
--@include context
--@include holds
--@include waitlist
--@include settle
begin()
if LOADED then settle_due() end
local hold = redis.call('HMGET', hold_key(ARGV[4]), 'status', 'seats', 'customer',
  'expires_at', 'booking_id')
if not hold[1] then return finish({}) end
return finish({hold[1], hold[2], hold[3], hold[4], hold[5] or '', NOW})
