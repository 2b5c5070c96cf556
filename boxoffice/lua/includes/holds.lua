-- Creating and ending holds. Needs context.lua. A hold's seats are held in the status
-- map alone (statusmap.lua): the hold's hash names them, the seats hash never does.
--@include statusmap

local function hold_key(hold_id) return BASE .. 'hold:' .. hold_id end

-- What a hold call answers before it looks at seats: the hold its id made already (the
-- call sent again: {2, expires_at, now, hold_id}), or {-11, reason} when the show sells
-- nothing; nil when neither.
local function replayed_or_refused_hold(hold_id)
  local made = redis.call('HGET', hold_key(hold_id), 'expires_at')
  if made then return {2, tonumber(made), NOW, hold_id} end
  local stopped = not_selling()
  if stopped then return {-11, stopped} end
  return nil
end

-- Pins a hold for one confirm attempt under a new fence: it cannot end before the pin does
-- (its deadline is the later of its own and the pin's). Answers the fence.
local function pin_hold(hold_id, expires_at, pin_ms, attempt)
  local fence = redis.call('HINCRBY', K_META, 'fence', '1')
  local pinned_until = NOW + pin_ms
  redis.call('HSET', hold_key(hold_id), 'status', 'confirming', 'fence', fence, 'pinned_until', pinned_until,
    'attempt', attempt)
  redis.call('ZADD', K_DEADLINES, math.max(pinned_until, expires_at), hold_id)
  FIRST_DEADLINE_KNOWN = false
  return fence
end

-- An ended hold's hash stays readable RETENTION_S (status lookups), and the records set
-- names it so that unload_show-1.lua deletes it with the show. A live hold needs neither:
-- it has no expiry, and unload waits until the deadlines zset has no hold left.
local function ended_hold_kept(hold_id)
  redis.call('EXPIRE', hold_key(hold_id), RETENTION_S)
  redis.call('SADD', K_RECORDS, 'hold:' .. hold_id)
end

-- source: nil for a hold the customer asked for, else how it came ('waitlist': a grant,
-- 'reclaimed': a payment that came after the hold expired), written only then (each field
-- a hold writes costs it: nothing reads a hold's source or start, which is its expires_at
-- less the hold time). ttl_ms: the hold time (nil: the show's, TTL_MS). seats: all free
-- (the caller checked); positions: theirs in the status map (nil: read here); counted: the
-- customer's count has these seats already (customer_takes, waitlist.lua).
local function create_hold(hold_id, customer, seats, source, ttl_ms, positions, counted)
  set_seats(seats, positions or seat_positions(seats), 'h')
  local expires = NOW + (ttl_ms or TTL_MS)
  -- Numbers as text, made by us: Redis would format a Lua number with "%.17g" (slow),
  -- and expires_at twice (HSET and ZADD).
  local expires_text = string.format('%d', expires)
  local key = hold_key(hold_id)
  redis.call('HSET', key, 'seats', table.concat(seats, ','), 'customer', customer, 'status', 'active',
    'expires_at', expires_text)
  if source then redis.call('HSET', key, 'source', source) end
  -- No expiry while it lives (as a waitlist entry's), and not in the records set yet: the
  -- deadlines zset names it. Every way a hold ends (ended_hold_kept) gives its hash
  -- RETENTION_S and names it in the records set, where unload_show-1.lua finds it.
  -- A new member can only lower the earliest deadline; a moved one may raise it.
  if redis.call('ZADD', K_DEADLINES, expires_text, hold_id) == 1 and FIRST_DEADLINE_KNOWN then
    if FIRST_DEADLINE == nil or expires < FIRST_DEADLINE then FIRST_DEADLINE = expires end
  else
    FIRST_DEADLINE_KNOWN = false
  end
  local count = string.format('%d', #seats)
  if not counted then redis.call('HINCRBY', K_CUSTOMERS, customer, count) end
  redis.call('HINCRBY', K_STATS, 'held', count)
  return expires
end

-- Seats (at their positions, each once) go from `state` ('held' or 'booked') back to free:
-- one write of their span (set_seats), one change of each count. Every way seats come
-- free comes here (free_held_seats, cancel_booking-1.lua).
local function seats_freed(seats, positions, state)
  if #seats == 0 then return end
  set_seats(seats, positions, false)
  local count = string.format('%d', #seats)
  redis.call('HINCRBY', K_STATS, state, '-' .. count)
end

-- Frees those of a hold's `seats` that the status map still shows held, except the ones in
-- `kept` (seat -> true: a booking took them). Every way a hold lets seats go comes here
-- (end_hold, confirm_finish-1.lua). Answers how many it freed.
local function free_held_seats(seats, kept)
  local positions = seat_positions(seats)
  local chars = seat_chars(positions)
  local freed_seats, freed_positions = {}, {}
  for i, seat in ipairs(seats) do
    if chars[i] == 'h' and not kept[seat] then
      local n = #freed_seats + 1
      freed_seats[n], freed_positions[n] = seat, positions[i]
    end
  end
  seats_freed(freed_seats, freed_positions, 'held')
  return #freed_seats
end

-- A hold's seats no longer count against its customer's limit.
local function release_customer_count(customer, seat_count)
  if redis.call('HINCRBY', K_CUSTOMERS, customer, string.format('%d', -seat_count)) <= 0 then
    redis.call('HDEL', K_CUSTOMERS, customer)
  end
end

-- Ends an active or confirming hold: frees the seats it still holds (all but those a
-- booking took from it). `counter` is the stats field that learns how holds end (the
-- waitlist's eta uses it).
local function end_hold(hold_id, status, counter)
  local key = hold_key(hold_id)
  local hold = redis.call('HMGET', key, 'status', 'seats', 'customer', 'lost')
  redis.call('ZREM', K_DEADLINES, hold_id)
  FIRST_DEADLINE_KNOWN = false
  if hold[1] ~= 'active' and hold[1] ~= 'confirming' then return 0 end
  local seats = split_seats(hold[2])
  local freed = free_held_seats(seats, lost_set(hold[4]))
  release_customer_count(hold[3], #seats)
  redis.call('HSET', key, 'status', status, 'ended_at', NOW)
  ended_hold_kept(hold_id)
  if counter then redis.call('HINCRBY', K_STATS, counter, '1') end
  return freed
end

-- The live hold that holds `seat` (held in the status map), or nil; `own` (a hold id or
-- "") is asked first, then every live hold (the deadlines zset): a booking rarely takes
-- a seat another hold holds.
local function holder_of(seat, own)
  local candidates = redis.call('ZRANGE', K_DEADLINES, '0', '-1')
  if own ~= '' then table.insert(candidates, 1, own) end
  for _, hold_id in ipairs(candidates) do
    local hold = redis.call('HMGET', hold_key(hold_id), 'status', 'seats', 'lost')
    if (hold[1] == 'active' or hold[1] == 'confirming') and not lost_set(hold[3])[seat] then
      for listed in string.gmatch(hold[2] or '', '[^,]+') do
        if listed == seat then return hold_id end
      end
    end
  end
  return nil
end

-- Marks seats sold. Booked always wins: PostgreSQL already committed the sale. A seat
-- held by a hold other than `own` (the booking's hold id, "" none) joins that hold's
-- `lost` seats: it no longer holds it, and will not free it when it ends.
local function book_seats(booking_id, seats, own)
  local value = 'b:' .. booking_id
  local positions = seat_positions(seats)
  local chars = seat_chars(positions)
  local newly = 0
  for i, seat in ipairs(seats) do
    local char = chars[i]
    if char ~= 'b' or redis.call('HGET', K_SEATS, seat) ~= value then
      if char == 'h' then
        local holder = holder_of(seat, own)
        if holder and holder ~= own then
          local lost = redis.call('HGET', hold_key(holder), 'lost')
          redis.call('HSET', hold_key(holder), 'lost', lost and (lost .. ',' .. seat) or seat)
        end
        redis.call('HINCRBY', K_STATS, 'held', '-1')
      elseif char == 'b' then
        redis.call('HINCRBY', K_STATS, 'booked', '-1')
      end
      redis.call('HSET', K_SEATS, seat, value)
      redis.call('HINCRBY', K_STATS, 'booked', '1')
      set_seat(seat, positions[i], value)
      newly = newly + 1
    end
  end
  return newly
end
