-- load_show: puts a show's seat state into Redis the first time it is touched,
-- from the catalog and the booked seats in PostgreSQL. Does nothing when the
-- show is already loaded, so racing loaders are harmless.
-- Input:
--   KEYS[1..8], ARGV[1..3]   see includes/context.lua
--   ARGV[4]  starts_at (ms)
--   ARGV[5]  status: open or closed
--   ARGV[6]  number of seats n
--   ARGV[7 .. 6+2n]          seat, "category|row|place|rank" pairs (see context.lua)
--   ARGV[7+2n ..]            seat, booking_id pairs of the seats already sold
-- Output:
--   1 loaded now, 0 was already loaded
--@include context
if is_loaded() then return 0 end
local n = tonumber(ARGV[6])
local first_booked = 7 + 2 * n
for i = 7, first_booked - 1, 2 do
  redis.call('HSET', K_LAYOUT, ARGV[i], ARGV[i + 1])
end
local booked = 0
for i = first_booked, #ARGV, 2 do
  redis.call('HSET', K_SEATS, ARGV[i], 'b:' .. ARGV[i + 1])
  booked = booked + 1
end
redis.call('HSET', K_STATS, 'free', n - booked, 'held', 0, 'booked', booked, 'waiting', 0)
-- Fences count on from Redis's clock in microseconds: above every fence handed out
-- before a wipe or an unload (at most a thousand confirms a millisecond).
redis.call('HSET', K_META, 'starts_at', ARGV[4], 'status', ARGV[5], 'seat_count', n,
  'fence', string.format('%d', NOW * 1000), 'loaded', '1')
return 1
