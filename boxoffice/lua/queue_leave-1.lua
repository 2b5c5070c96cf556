-- queue_leave: a customer leaves the queue (waiting) or gives up an unused pass; the
-- place goes to the next in order.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  ticket id
-- Output:
--   {1}            left, now or by an earlier run (idempotent)
--   {-1}           show not loaded
--   {-4, status}   the ticket ended otherwise (or used its pass; "" unknown)
--@include context
--@include holds
--@include waitlist
--@include settle
--@include queue
if not LOADED then return -1 end
begin()
settle_due()
queue_settle('')
local t = redis.call('HMGET', ticket_key(ARGV[4]), 'status', 'used')
if t[1] == 'left' then return finish({1}) end
if t[1] ~= 'waiting' and not (t[1] == 'admitted' and t[2] ~= '1') then
  return finish({-4, t[1] or ''})
end
end_ticket(ARGV[4], 'left')
admit()
return finish({1})
