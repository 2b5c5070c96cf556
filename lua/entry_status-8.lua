-- entry_status: a waitlist entry with what its eta needs, all counted for the
-- entry's category (every category when it waits for any): the seats wanted by
-- the entries ahead that compete for those seats, the free seats already kept
-- for the queue, and the deadlines of the active holds on such seats, earliest
-- first, with how many such seats each would give back.
-- Input:
--   KEYS[1..8], ARGV[1..3]   see includes/context.lua
--   ARGV[4]  entry id
--   ARGV[5]  how many deadlines to look at, at most
-- Output:
--   {} when unknown, else {status, count, category, position, hold_id, wanted_ahead,
--    holds_paid, holds_unpaid, now, {deadline, seats, deadline, seats, ...},
--    free_for_entry, starts_at}   (position 0 and no counts unless waiting)
--@include context
--@include holds
--@include waitlist
--@include settle
begin()
if is_loaded() then settle_due() end
local key = entry_key(ARGV[4])
local entry = redis.call('HMGET', key, 'status', 'count', 'category', 'hold_id')
if not entry[1] then return finish({}) end
local category = entry[3] or ''
local function usable(seat_category) return category == '' or seat_category == category end
local position, wanted_ahead, free_for_entry = 0, 0, 0
local deadlines = {}
if entry[1] == 'waiting' then
  local rank = redis.call('ZRANK', K_WAITLIST, ARGV[4])
  position = rank + 1
  if rank > 0 then
    for _, ahead in ipairs(redis.call('ZRANGE', K_WAITLIST, 0, rank - 1)) do
      local other = redis.call('HMGET', entry_key(ahead), 'count', 'category')
      -- an entry ahead competes unless it waits for another single category
      if category == '' or other[2] == '' or other[2] == category then
        wanted_ahead = wanted_ahead + tonumber(other[1] or '0')
      end
    end
  end
  if category == '' then
    free_for_entry = tonumber(redis.call('HGET', K_STATS, 'free') or '0')
  else
    for _, seat in ipairs(free_seats()) do
      if seat.category == category then free_for_entry = free_for_entry + 1 end
    end
  end
  local due = redis.call('ZRANGE', K_DEADLINES, 0, tonumber(ARGV[5]) - 1, 'WITHSCORES')
  for i = 1, #due, 2 do
    local hold = redis.call('HMGET', hold_key(due[i]), 'seats', 'status')
    -- confirming holds are being paid: they are not expected back
    if hold[1] and hold[2] == 'active' then
      local seats = 0
      for _, seat in ipairs(split_seats(hold[1])) do
        if category == '' or usable(seat_category(seat)) then seats = seats + 1 end
      end
      if seats > 0 then
        deadlines[#deadlines + 1] = due[i + 1]
        deadlines[#deadlines + 1] = seats
      end
    end
  end
end
local stats = redis.call('HMGET', K_STATS, 'holds_paid', 'holds_unpaid')
local starts_at = redis.call('HGET', K_META, 'starts_at') or '0'
return finish({entry[1], entry[2], category, position, entry[4] or '', wanted_ahead,
  stats[1] or '0', stats[2] or '0', NOW, deadlines, free_for_entry, starts_at})
