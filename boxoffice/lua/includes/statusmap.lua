-- The status map: a show's seats as ONE string, a character per seat in the hall
-- plan's order ('0' free, 'h' held, 'b' booked). It is the truth of whether a seat is
-- free, held or booked: a hold reads and writes its seats' characters (O(1) by
-- position) and never the seats hash, which keeps only the booked seats' booking ids
-- ("b:<booking_id>"). A held seat's hold is the live (active or confirming) hold whose
-- hash lists it in `seats` and not in `lost` (the seats a booking took from it while it
-- lived: book_seats, holds.lua); there is exactly one. A seat map read is one GET.
-- Two keys next to the show's own, under its hash tag (same cluster slot), made by
-- load_show-1.lua and index_seats-1.lua:
--   <base>statusmap   the string
--   <base>seatindex   hash: seat -> its 0-based position in the string
-- Every script writes a character when it changes a seat (set_seat), so a call reads
-- its own changes. A reader checks the string's counts against the stats hash
-- (seat_status-1.lua answers both) and has it renumbered and rebuilt from the live
-- holds and the seats hash when they disagree (index_seats-1.lua).
-- A show an older library loaded has no index: the first script that needs a position
-- numbers the seats in row and place order (provisional: seat_status-1.lua answers 0
-- until the engine numbers them in the hall plan's order) and builds the map.
-- Needs context.lua (K_STATUS_MAP, K_SEAT_INDEX).

local MAP_CHAR = {h = 'h', b = 'b'}

-- A seat's character in the map for a new state: value "h..." (held), "b..." (booked), or
-- false (free); its first character says which, and any other counts as free. The one
-- place that says it: the map (set_seat, set_seats) and the change message
-- (settle.lua, changed_seats_text) both ask here.
local function map_char(value)
  return value and MAP_CHAR[string.sub(value, 1, 1)] or '0'
end

local function hold_hash(hold_id) return BASE .. 'hold:' .. hold_id end

-- Seat -> true for the seats of a hold's `lost` field (nil field: none).
local function lost_set(csv)
  local lost = {}
  if csv then
    for seat in string.gmatch(csv, '[^,]+') do lost[seat] = true end
  end
  return lost
end

-- Seat -> hold id of every held seat, from the live holds (the deadlines zset names them).
local function held_by_live_holds()
  local held = {}
  for _, hold_id in ipairs(redis.call('ZRANGE', K_DEADLINES, '0', '-1')) do
    local hold = redis.call('HMGET', hold_hash(hold_id), 'status', 'seats', 'lost')
    if (hold[1] == 'active' or hold[1] == 'confirming') and hold[2] then
      local lost = lost_set(hold[3])
      for seat in string.gmatch(hold[2], '[^,]+') do
        if not lost[seat] then held[seat] = hold_id end
      end
    end
  end
  return held
end

-- Builds the map again from the truth behind it: the booked seats of the seats hash and
-- the seats of the live holds. A held seat an older library wrote into the seats hash
-- ("h:<hold_id>") leaves it: its hold's hash lists it.
local function rebuild_status_map()
  local index = redis.call('HGETALL', K_SEAT_INDEX)
  if #index == 0 then return false end
  local held = held_by_live_holds()
  local booked = {}
  local marks = redis.call('HGETALL', K_SEATS)
  for i = 1, #marks, 2 do
    if string.sub(marks[i + 1], 1, 2) == 'b:' then
      booked[marks[i]] = true
    else
      redis.call('HDEL', K_SEATS, marks[i])
    end
  end
  local chars = {}
  for i = 1, #index, 2 do
    local seat = index[i]
    chars[tonumber(index[i + 1]) + 1] = (booked[seat] and 'b') or (held[seat] and 'h') or '0'
  end
  local map = table.concat(chars)
  LAST_TEXT = nil
  redis.call('SET', K_STATUS_MAP, map)
  return map
end

-- Numbers the seats of a show that has no index (an older library loaded it) in row and
-- place order, builds the map, and marks the numbering provisional (seat_status-1.lua).
local function build_provisional_index()
  local layout = redis.call('HGETALL', K_LAYOUT)
  local seats = {}
  for i = 1, #layout, 2 do
    local row, place = string.match(layout[i + 1], '^[^|]*|([^|]*)|([^|]*)')
    seats[#seats + 1] = {id = layout[i], row = row or '', place = tonumber(place) or 0}
  end
  table.sort(seats, function(a, b)
    if a.row ~= b.row then return a.row < b.row end
    if a.place ~= b.place then return a.place < b.place end
    return a.id < b.id
  end)
  redis.call('DEL', K_SEAT_INDEX)
  for i, seat in ipairs(seats) do
    redis.call('HSET', K_SEAT_INDEX, seat.id, string.format('%d', i - 1))
  end
  rebuild_status_map()
  redis.call('HSET', K_META, 'index_provisional', '1',
    'layout_stamp', 'i' .. redis.call('HINCRBY', K_META, 'index_epoch', '1'))
end

-- The values of any number of a hash's fields (false: none), read a hundred at a time
-- (unpack has a limit).
local HMGET_BATCH = 100

local function hmget_all(key, fields)
  if #fields == 0 then return {} end
  if #fields <= HMGET_BATCH then return redis.call('HMGET', key, unpack(fields)) end
  local out = {}
  for first = 1, #fields, HMGET_BATCH do
    local last = math.min(first + HMGET_BATCH - 1, #fields)
    local values = redis.call('HMGET', key, unpack(fields, first, last))
    for i = first, last do out[i] = values[i - first + 1] end
  end
  return out
end

-- The seats' positions in the map, as the text HMGET answers (a Lua number would be
-- formatted again for GETRANGE and SETRANGE); false: not in the hall. A seat without one
-- in a show that has no index at all numbers the show first.
local function seat_positions(seats)
  if #seats == 0 then return {} end
  local out = hmget_all(K_SEAT_INDEX, seats)
  for i = 1, #seats do
    if not out[i] then
      if redis.call('EXISTS', K_SEAT_INDEX) == 1 then return out end
      build_provisional_index()
      return hmget_all(K_SEAT_INDEX, seats)
    end
  end
  return out
end

-- A call's seats in the map, read and written in one call each: they are few and mostly
-- side by side, so the span from the lowest position to the highest stands for them all
-- (one GETRANGE, one SETRANGE) instead of a call per seat. A span is four values, no table
-- (a hold has a few seats, and each table a call makes costs Redis more than a pass over
-- them): `low` and `high` (the lowest and highest position, numbers) and `first` and `last`
-- (the same as text: Redis takes them so).

-- The span of positions (as seat_positions answers them: text; false: not in the hall);
-- nil when none is given.
local function span_of(positions)
  local low, high, first, last
  for i = 1, #positions do
    local position = positions[i]
    if position then
      local n = tonumber(position)
      if low == nil then
        low, high, first, last = n, n, position, position
      elseif n < low then
        low, first = n, position
      elseif n > high then
        high, last = n, position
      end
    end
  end
  return low, high, first, last
end

-- The span's text, read (and the map built again first when it is missing or shorter), or
-- cut from the text this call read last when that covers it and nothing was written since
-- (LAST_TEXT, context.lua): a hold that found a seat taken (all_free) names the taken ones
-- (seat_chars) from the text it just read.
local function span_text(low, high, first, last)
  if LAST_TEXT ~= nil and LAST_LOW <= low and high < LAST_LOW + #LAST_TEXT then
    return string.sub(LAST_TEXT, low - LAST_LOW + 1, high - LAST_LOW + 1)
  end
  local text = redis.call('GETRANGE', K_STATUS_MAP, first, last)
  if #text <= high - low then
    rebuild_status_map()
    text = redis.call('GETRANGE', K_STATUS_MAP, first, last)
  end
  LAST_TEXT, LAST_LOW = text, low
  return text
end

-- The map's character at each position ('0', 'h' or 'b'; nil where the position is
-- false), in one read of their span.
local function seat_chars(positions)
  local chars = {}
  local low, high, first, last = span_of(positions)
  if low == nil then return chars end
  local text = span_text(low, high, first, last)
  for i = 1, #positions do
    local position = positions[i]
    if position then
      local at = tonumber(position) - low + 1
      chars[i] = string.sub(text, at, at)
    end
  end
  return chars
end

local FREE = 48  -- string.byte('0') (the string library is not there while the library loads)

-- Whether the map shows every one of positions (all in the hall) free, in one read of their
-- span: a hold's question, answered without a table (seat_chars says which are not).
local function all_free(positions)
  local low, high, first, last = span_of(positions)
  if low == nil then return true end
  local text = span_text(low, high, first, last)
  if not string.find(text, '[^0]') then return true end  -- the whole span is free
  for i = 1, #positions do
    if string.byte(text, tonumber(positions[i]) - low + 1) ~= FREE then return false end
  end
  return true
end

-- The whole map (built again first if it is missing); nil when the show has no index.
local function status_map()
  local map = redis.call('GET', K_STATUS_MAP)
  if map then return map end
  if redis.call('EXISTS', K_SEAT_INDEX) == 0 then build_provisional_index() end
  return redis.call('GET', K_STATUS_MAP) or rebuild_status_map() or nil
end

-- A seat takes a new state (value as map_char's). Writes its character at `position` (text;
-- false: not in the hall, nothing to write) and notes the change for the change message
-- (context.lua, seat_changed).
local function set_seat(seat, position, value)
  if position then
    LAST_TEXT = nil
    redis.call('SETRANGE', K_STATUS_MAP, position, map_char(value))
  end
  if noting_changes() then seat_changed(seat, value) end
end

-- Whether positions (as span_of's; false: none) fill their span of `width` exactly, each
-- once: side by side. No table for it (a hold has a few seats).
local function fill_span(positions, width)
  local count = 0
  for i = 1, #positions do
    local position = positions[i]
    if position then
      count = count + 1
      for j = 1, i - 1 do
        if positions[j] == position then return false end
      end
    end
  end
  return count == width
end

-- Seats all take one new state (value as set_seat's). Side by side (in any order), one
-- write of their span; else one write per run of positions that follow each other in the
-- order given (a seat named twice is written twice, alike). Building the span's new text
-- from its old one cost Redis more than the calls it saved (bench.lua_ab: 0.95 without it).
local function set_seats(seats, positions, value)
  if noting_changes() then
    for i = 1, #seats do seat_changed(seats[i], value) end
  end
  local low, high, first = span_of(positions)
  if low == nil then return end
  local char = map_char(value)
  LAST_TEXT = nil  -- the map changes
  local width = high - low + 1
  if fill_span(positions, width) then
    redis.call('SETRANGE', K_STATUS_MAP, first, string.rep(char, width))
    return
  end
  local run_first, run_length, run_last  -- the run being gathered: its first position (text)
  for i = 1, #positions do
    local position = positions[i]
    if position then
      local n = tonumber(position)
      if run_first and n == run_last + 1 then
        run_length, run_last = run_length + 1, n
      else
        if run_first then redis.call('SETRANGE', K_STATUS_MAP, run_first, string.rep(char, run_length)) end
        run_first, run_length, run_last = position, 1, n
      end
    end
  end
  redis.call('SETRANGE', K_STATUS_MAP, run_first, string.rep(char, run_length))
end
