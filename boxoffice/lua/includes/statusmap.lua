-- The status map: a show's seats as ONE string, a character per seat in the hall
-- plan's order ('0' free, 'h' held, 'b' booked), kept beside the seats hash so a
-- seat map read is one GET instead of a walk over the hash (2,000 seats: ~1 ms of
-- Redis's single thread saved per read). Two keys next to the show's own, under its
-- hash tag (same cluster slot), made by index_seats-8.lua:
--   <base>statusmap   the string
--   <base>seatindex   hash: seat -> its 0-based position in the string
-- Every script marks the seats it changed when it finishes (settle.lua, publish_changes);
-- a reader checks the string's counts against the stats hash (seat_status-8.lua answers
-- both) and has it rebuilt from the seats hash when they disagree (index_seats-8.lua),
-- so a missed mark can never show for long.
-- Needs context.lua (K_STATUS_MAP, K_SEAT_INDEX).

-- seats[i] takes the character chars[i] ('0' free, 'h' held, 'b' booked): their positions
-- read a hundred at a time (a settle may free thousands of seats; unpack has a limit).
-- Each position goes back to Redis as the text it came as: a Lua number would be formatted.
local MARK_BATCH = 100

local function mark_seats(seats, chars)
  for first = 1, #seats, MARK_BATCH do
    local last = math.min(first + MARK_BATCH - 1, #seats)
    local positions = redis.call('HMGET', K_SEAT_INDEX, unpack(seats, first, last))
    for i = first, last do
      local position = positions[i - first + 1]
      if position then redis.call('SETRANGE', K_STATUS_MAP, position, chars[i]) end
    end
  end
end

local function rebuild_status_map()
  local index = redis.call('HGETALL', K_SEAT_INDEX)
  if #index == 0 then return false end
  local chars = {}
  for i = 1, #index, 2 do
    local value = redis.call('HGET', K_SEATS, index[i])
    chars[tonumber(index[i + 1]) + 1] = value and string.sub(value, 1, 1) or '0'
  end
  local map = table.concat(chars)
  redis.call('SET', K_STATUS_MAP, map)
  return map
end
