-- cancel_booking: a cancelled booking's seats go back to the show in one atomic
-- step: first to its waiters in arrival order (grant_waiters, which grants
-- nothing once the show started or closed), the rest to sale. PostgreSQL has
-- already let the seats go (engine/cancellations.py), so a later load agrees.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  booking id
--   ARGV[5..] the booking's seats
-- Output:
--   seats freed by this call (0 when an earlier run freed them: idempotent by
--   booking id, only seats still marked with this booking are touched)
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
begin()
settle_due()
local mine = 'b:' .. ARGV[4]
local seats = {unpack(ARGV, 5)}
local marks = hmget_all(K_SEATS, seats)
local positions = seat_positions(seats)
-- The seats still marked with this booking, each once: freed in one write of the map.
local mine_seats, mine_positions, seen = {}, {}, {}
for i, seat in ipairs(seats) do
  if marks[i] == mine and not seen[seat] then
    seen[seat] = true
    local n = #mine_seats + 1
    mine_seats[n], mine_positions[n] = seat, positions[i]
  end
end
local freed = #mine_seats
if freed > 0 then
  redis.call('HDEL', K_SEATS, unpack(mine_seats))
  seats_freed(mine_seats, mine_positions, 'booked')
  grant_waiters()
end
return finish(freed)
