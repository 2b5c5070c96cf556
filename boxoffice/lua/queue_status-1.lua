-- queue_status: a release queue ticket as it is now (includes/queue.lua ticket_view),
-- after settling the queue (lapsed passes, the opening's draw, the end). O(log n).
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  ticket id
--   ARGV[5]  seed of the opening's draw (hex), should this call be the first after it
-- Output:
--   {} unknown, else the ticket view
--@include context
--@include holds
--@include waitlist
--@include settle
--@include queue
if not LOADED then return -1 end
begin()
settle_due()
queue_settle(ARGV[5])
return finish(ticket_view(ARGV[4]))
