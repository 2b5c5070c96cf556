-- confirm_begin: pins an active hold for a confirm: it cannot expire while the
-- payment runs (its deadline becomes the later of its own and the pin's end),
-- and a fresh fencing token names this confirm attempt so a stale one can never
-- finish. A confirming hold whose pin lapsed counts as active again: its
-- confirm is presumed dead, and the new fence shuts it out.
-- Fences never repeat for a show: the counter starts from Redis's clock when the
-- show is loaded (load_show-1.lua), so a wipe or an unload cannot hand out a fence
-- an older confirm still carries.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  hold id
--   ARGV[5]  pin time in ms
--   ARGV[6]  attempt id (unguessable, one per confirm attempt, made by the engine)
-- Output:
--   {1, fence, seats_csv, customer, expires_at}   pinned (by this run, or by an earlier
--                                                 run of the same attempt: idempotent)
--   {-1}                                          show not loaded
--   {-4, status, booking_id}                      not active (released, confirmed)
--   {-6}                                          another confirm holds a live pin
--   {-7}                                          expired
--   {-8}                                          unknown hold
--   {-11, reason}                                 the show sells nothing: "closed" or "started"
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
begin()
settle_due()
local key = hold_key(ARGV[4])
local hold = redis.call('HMGET', key, 'status', 'seats', 'customer', 'expires_at', 'booking_id',
  'pinned_until', 'attempt', 'fence')
if not hold[1] then return finish({-8}) end
if hold[1] == 'confirming' and hold[7] == ARGV[6] then
  -- The same attempt again (its answer was lost): its pin, renewed if it lapsed meanwhile.
  if tonumber(hold[6]) <= NOW then
    local pinned_until = NOW + tonumber(ARGV[5])
    redis.call('HSET', key, 'pinned_until', pinned_until)
    redis.call('ZADD', K_DEADLINES, math.max(pinned_until, tonumber(hold[4])), ARGV[4])
    FIRST_DEADLINE_KNOWN = false
  end
  return finish({1, hold[8], hold[2], hold[3], hold[4]})
end
-- A closed or started show sells nothing, whatever became of the hold (closing ended it).
local stopped = not_selling()
if stopped then return finish({-11, stopped}) end
if hold[1] == 'expired' then return finish({-7}) end
if hold[1] == 'confirming' and tonumber(hold[6]) > NOW then return finish({-6}) end
if hold[1] ~= 'active' and hold[1] ~= 'confirming' then return finish({-4, hold[1], hold[5] or ''}) end
local fence = pin_hold(ARGV[4], tonumber(hold[4]), tonumber(ARGV[5]), ARGV[6])
return finish({1, fence, hold[2], hold[3], hold[4]})
