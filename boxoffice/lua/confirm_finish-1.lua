-- confirm_finish: after PostgreSQL committed the booking, marks its seats
-- booked and the hold confirmed. Booked always wins, whatever the hold's state:
-- the sale is already durable. Waiters who lost every chance are told.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  hold id ("" when repairing from PostgreSQL without a hold)
--   ARGV[5]  booking id
--   ARGV[6..] seats
-- Output:
--   number of seats that were not yet marked booked
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
begin()
settle_due()
local seats = {}
for i = 6, #ARGV do seats[#seats + 1] = ARGV[i] end
local newly = book_seats(ARGV[5], seats, ARGV[4])
if ARGV[4] ~= '' then
  local key = hold_key(ARGV[4])
  local hold = redis.call('HMGET', key, 'status', 'customer', 'seats', 'lost')
  if hold[1] == 'active' or hold[1] == 'confirming' then
    -- seats this hold still holds that were not part of the sale go back
    local sold = lost_set(hold[4])
    for _, seat in ipairs(seats) do sold[seat] = true end
    local own = split_seats(hold[3])
    free_held_seats(own, sold)
    release_customer_count(hold[2], #own)
    redis.call('HINCRBY', K_STATS, 'holds_paid', '1')
  end
  if hold[1] then
    redis.call('ZREM', K_DEADLINES, ARGV[4])
    FIRST_DEADLINE_KNOWN = false
    redis.call('HSET', key, 'status', 'confirmed', 'booking_id', ARGV[5], 'ended_at', NOW)
    ended_hold_kept(ARGV[4])
  end
end
mark_impossible()
grant_waiters()
return finish(newly)
