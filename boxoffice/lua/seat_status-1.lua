-- seat_status: every seat of a show in one string, for the seat map (see
-- includes/statusmap.lua): one GET instead of a walk over the seats hash.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
-- Output:
--   -1 when the show is not loaded, else
--   {map, categories, held, booked}: map has a character per seat in the hall
--   plan's order ('0' free, 'h' held, 'b' booked), or is 0 when the show's seats
--   are not indexed yet, or only provisionally (statusmap.lua; the engine sends the plan's order with index_seats and
--   asks again); categories: the price categories the queue waits for ("*": any)
--   — free seats of those are kept for waiters and shown as held; held, booked:
--   the stats hash's counts, which the engine checks the map against (counting
--   here would cost more Redis time than the rest of the script).
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
begin()
settle_due()
local map = redis.call('GET', K_STATUS_MAP)
-- Missing, or numbered by a script rather than in the plan's order (statusmap.lua).
if not map or redis.call('HEXISTS', K_META, 'index_provisional') == 1 then return finish({0, {}, 0, 0}) end
local stats = redis.call('HMGET', K_STATS, 'held', 'booked')
return finish({map, reserved_categories(), tonumber(stats[1] or '0'), tonumber(stats[2] or '0')})
