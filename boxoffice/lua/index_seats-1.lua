-- index_seats: numbers a loaded show's seats in the hall plan's order and builds
-- its status map again from the live holds and the booked seats of the seats hash
-- (see includes/statusmap.lua). Running it again renumbers and rebuilds: harmless
-- (and the repair of a map that drifted).
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4..]  every seat id of the hall, in the hall plan's order
-- Output:
--   -1 when the show is not loaded, else the number of seats indexed; an error reply (and
--   nothing changed) when the seats are not exactly the layout's, each once: holds find a
--   seat by its position (hold_seats-1.lua), so a seat the index had and the layout lacked
--   would be one the show does not have. Only a bug sends such seats.
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
local seats = {}
for i = 4, #ARGV do seats[#seats + 1] = ARGV[i] end
local entries, named = hmget_all(K_LAYOUT, seats), {}
for i, seat in ipairs(seats) do
  if not entries[i] or named[seat] then
    return redis.error_reply('index_seats: seat ' .. seat .. ' is not in the layout or is named twice')
  end
  named[seat] = true
end
if #seats ~= redis.call('HLEN', K_LAYOUT) then
  return redis.error_reply('index_seats: the layout has seats the call did not name')
end
begin()
settle_due()
redis.call('DEL', K_SEAT_INDEX)
redis.call('HDEL', K_META, 'index_provisional')
for i = 4, #ARGV do
  redis.call('HSET', K_SEAT_INDEX, ARGV[i], i - 4)
end
rebuild_status_map()
-- The seats' positions changed: best.lua's parsed layout must be made again.
redis.call('HSET', K_META, 'layout_stamp', 'i' .. redis.call('HINCRBY', K_META, 'index_epoch', '1'))
return finish(#ARGV - 3)
