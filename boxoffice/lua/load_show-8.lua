-- load_show: puts a show's seat state into Redis the first time it is touched,
-- from the catalog and the booked seats in PostgreSQL. Does nothing when the
-- show is already loaded, so racing loaders are harmless.
-- Input:
--   KEYS[1..8], ARGV[1..3]   see includes/context.lua
--   ARGV[4]  starts_at (ms)
--   ARGV[5]  number of seats n
--   ARGV[6 .. 5+2n]          seat, "category|row|place|rank" pairs (see context.lua)
--   ARGV[6+2n ..]            seat, booking_id pairs of the seats already sold
-- Output:
--   1 loaded now, 0 was already loaded
--@include context
if is_loaded() then return 0 end
local n = tonumber(ARGV[5])
local first_booked = 6 + 2 * n
for i = 6, first_booked - 1, 2 do
  redis.call('HSET', K_LAYOUT, ARGV[i], ARGV[i + 1])
end
local booked = 0
for i = first_booked, #ARGV, 2 do
  redis.call('HSET', K_SEATS, ARGV[i], 'b:' .. ARGV[i + 1])
  booked = booked + 1
end
redis.call('HSET', K_STATS, 'free', n - booked, 'held', 0, 'booked', booked, 'waiting', 0)
redis.call('HSET', K_META, 'starts_at', ARGV[4], 'seat_count', n, 'loaded', '1')
return 1
