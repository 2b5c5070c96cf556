-- cancel_booking: a cancelled booking's seats go back to the show in one atomic
-- step: first to its waiters in arrival order (grant_waiters, which grants
-- nothing once the show started or closed), the rest to sale. PostgreSQL has
-- already let the seats go (engine/cancellations.py), so a later load agrees.
-- Input:
--   KEYS[1..8], ARGV[1..3]   see includes/context.lua
--   ARGV[4]  booking id
--   ARGV[5..] the booking's seats
-- Output:
--   seats freed by this call (0 when an earlier run freed them: idempotent by
--   booking id, only seats still marked with this booking are touched)
--@include context
--@include holds
--@include waitlist
--@include settle
if not is_loaded() then return -1 end
begin()
settle_due()
local mine = 'b:' .. ARGV[4]
local freed = 0
local seats = {unpack(ARGV, 5)}
local positions = seat_positions(seats)
for i, seat in ipairs(seats) do
  if redis.call('HGET', K_SEATS, seat) == mine then
    redis.call('HDEL', K_SEATS, seat)
    redis.call('HINCRBY', K_STATS, 'booked', '-1')
    redis.call('HINCRBY', K_STATS, 'free', '1')
    set_seat(seat, positions[i], false)
    freed = freed + 1
  end
end
if freed > 0 then grant_waiters() end
return finish(freed)
