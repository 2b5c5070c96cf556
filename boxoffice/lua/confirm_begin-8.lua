-- confirm_begin: pins an active hold for a confirm: it cannot expire while the
-- payment runs (its deadline becomes the later of its own and the pin's end),
-- and a fresh fencing token names this confirm attempt so a stale one can never
-- finish. A confirming hold whose pin lapsed counts as active again: its
-- confirm is presumed dead, and the new fence shuts it out.
-- Input:
--   KEYS[1..8], ARGV[1..3]   see includes/context.lua
--   ARGV[4]  hold id
--   ARGV[5]  pin time in ms
-- Output:
--   {1, fence, seats_csv, customer, expires_at}   pinned
--   {-1}                                          show not loaded
--   {-4, status, booking_id}                      not active (released, confirmed)
--   {-6}                                          another confirm holds a live pin
--   {-7}                                          expired
--   {-8}                                          unknown hold
--@include context
--@include holds
--@include waitlist
--@include settle
if not is_loaded() then return -1 end
begin()
settle_due()
local key = hold_key(ARGV[4])
local hold = redis.call('HMGET', key, 'status', 'seats', 'customer', 'expires_at', 'booking_id',
  'pinned_until')
if not hold[1] then return finish({-8}) end
if hold[1] == 'expired' then return finish({-7}) end
if hold[1] == 'confirming' and tonumber(hold[6]) > NOW then return finish({-6}) end
if hold[1] ~= 'active' and hold[1] ~= 'confirming' then return finish({-4, hold[1], hold[5] or ''}) end
local fence = redis.call('HINCRBY', K_META, 'fence', '1')
local pinned_until = NOW + tonumber(ARGV[5])
redis.call('HSET', key, 'status', 'confirming', 'fence', fence, 'pinned_until', pinned_until)
redis.call('ZADD', K_DEADLINES, math.max(pinned_until, tonumber(hold[4])), ARGV[4])
FIRST_DEADLINE_KNOWN = false
return finish({1, fence, hold[2], hold[3], hold[4]})
