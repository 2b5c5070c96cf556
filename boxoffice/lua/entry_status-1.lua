-- entry_status: a waitlist entry, and for a waiting one what its eta needs besides
-- the holds (lua/eta_holds-1.lua): its position, the seats wanted by the entries
-- ahead that compete with it (all of them when it waits for any category, else
-- those waiting for any or for its category), and the free seats already kept
-- for it. O(log n) in the queue's length.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  entry id
-- Output:
--   {} when unknown, else {status, count, category, position, hold_id, wanted_ahead,
--    holds_paid, holds_unpaid, now, free_for_entry, starts_at}
--   (position, wanted_ahead and free_for_entry are 0 unless waiting)
--@include context
--@include holds
--@include waitlist
--@include settle
begin()
if LOADED then settle_due() end
local entry = redis.call('HMGET', entry_key(ARGV[4]), 'status', 'count', 'category', 'hold_id', 'arrival')
if not entry[1] then return finish({}) end
local category = entry[3] or ''
local position, wanted_ahead, free_for_entry = 0, 0, 0
if entry[1] == 'waiting' then
  position = redis.call('ZRANK', K_WAITLIST, ARGV[4]) + 1
  wanted_ahead = wanted_before(category, tonumber(entry[5]))
  if category == '' then
    free_for_entry = seat_counts()
  else
    for _, seat in ipairs(free_seats()) do
      if seat.category == category then free_for_entry = free_for_entry + 1 end
    end
  end
end
local stats = redis.call('HMGET', K_STATS, 'holds_paid', 'holds_unpaid')
local starts_at = redis.call('HGET', K_META, 'starts_at') or '0'
return finish({entry[1], entry[2], category, position, entry[4] or '', wanted_ahead,
  stats[1] or '0', stats[2] or '0', NOW, free_for_entry, starts_at})
