-- load_show: puts a show's seat state into Redis the first time it is touched,
-- from the catalog and the booked seats in PostgreSQL. Does nothing when the
-- show is already loaded, so racing loaders are harmless.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  starts_at (ms)
--   ARGV[5]  status: open or closed
--   ARGV[6]  "1": explicit holds may not strand a single seat (hold_seats-1.lua), else "0"
--   ARGV[7]  sale_opens_at (ms, 0: on sale now) and ARGV[8] the queue's order
--            ("arrival" or "shuffle_before_open"; includes/queue.lua)
--   ARGV[9]  number of seats n
--   ARGV[10 .. 9+2n]         seat, "category|row|place|rank|kind" pairs in the hall
--                            plan's order (see context.lua)
--   ARGV[10+2n ..]           seat, booking_id pairs of the seats already sold
-- Output:
--   1 loaded now, 0 was already loaded
-- Also numbers the seats in plan order and builds the status map (statusmap.lua), so
-- best available (best.lua) finds it from the first call.
--@include context
if LOADED then return 0 end
local n = tonumber(ARGV[9])
local first_booked = 10 + 2 * n
for i = 10, first_booked - 1, 2 do
  redis.call('HSET', K_LAYOUT, ARGV[i], ARGV[i + 1])
end
local booked = 0
local sold = {}
for i = first_booked, #ARGV, 2 do
  redis.call('HSET', K_SEATS, ARGV[i], 'b:' .. ARGV[i + 1])
  sold[ARGV[i]] = true
  booked = booked + 1
end
local chars, numbered = {}, {}
for i = 10, first_booked - 1, 2 do
  local position = (i - 10) / 2
  chars[position + 1] = sold[ARGV[i]] and 'b' or '0'
  numbered[#numbered + 1] = ARGV[i]
  numbered[#numbered + 1] = string.format('%d', position)
  if #numbered >= 400 then
    redis.call('HSET', K_SEAT_INDEX, unpack(numbered))
    numbered = {}
  end
end
if #numbered > 0 then redis.call('HSET', K_SEAT_INDEX, unpack(numbered)) end
LAST_TEXT = nil  -- (statusmap.lua: the map is new)
redis.call('SET', K_STATUS_MAP, table.concat(chars))
redis.call('HSET', K_STATS, 'seats', n, 'held', 0, 'booked', booked, 'waiting', 0)
-- Fences count on from Redis's clock in microseconds: above every fence handed out
-- before a wipe or an unload (at most a thousand confirms a millisecond).
redis.call('HSET', K_META, 'starts_at', ARGV[4], 'status', ARGV[5], 'seat_count', n,
  'fence', string.format('%d', NOW * 1000), 'layout_stamp', string.format('%d', NOW),
  'no_stranded_seats', ARGV[6], 'sale_opens_at', ARGV[7], 'queue_order', ARGV[8], 'first_deadline', '0', 'loaded', '1')
return 1
