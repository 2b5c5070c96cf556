-- close_show: closes a show's sale in one atomic step: from now on nothing is
-- held, granted or confirmed; every active or confirming hold ends `released`
-- (a confirm still paying finds its pin gone, and is refunded), every waiting
-- entry ends `cancelled`, every live release queue ticket `closed` (includes/queue.lua),
-- and live streams are told. Bookings stay.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
-- Output:
--   {holds_released, entries_cancelled, tickets_closed}   closed now
--   {0, 0, 0}                                             already closed (idempotent)
--@include context
--@include holds
--@include waitlist
--@include settle
--@include queue
if not LOADED then return -1 end
begin()
if CLOSED then return finish({0, 0, 0}) end
settle_due()
redis.call('HSET', K_META, 'status', 'closed')
CLOSED = true
local released = 0
for _, hold_id in ipairs(redis.call('ZRANGE', K_DEADLINES, '0', '-1')) do
  local status = redis.call('HGET', hold_key(hold_id), 'status')
  if status == 'active' or status == 'confirming' then
    end_hold(hold_id, 'released', nil)
    released = released + 1
  end
end
local waiting = WAITING
end_all_waiters('cancelled')
local tickets = 0
if queue_meta() > 0 then tickets = end_queue('closed') end
return finish({released, waiting, tickets})
