-- sweep: ends the show's holds whose deadline passed and hands their seats to
-- the waitlist. Idempotent, so any number of sweepers may run it at once.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
-- Output:
--   {holds_ended, next_wake} (next_wake 0: nothing pending)
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
-- The zset itself, not the meta hash's first_deadline (context.lua): a field gone wrong
-- heals here.
FIRST_DEADLINE_KNOWN = false
begin()
local ended = settle_due()
return finish(ended)
