-- entry_status: a waitlist entry with what its eta needs: the seats wanted by
-- the entries ahead, and the deadlines (and sizes) of the holds that may free
-- seats, oldest first.
-- Input:
--   KEYS[1..8], ARGV[1..3]   see includes/context.lua
--   ARGV[4]  entry id
--   ARGV[5]  how many deadlines to return at most
-- Output:
--   {} when unknown, else {status, count, category, position, hold_id, wanted_ahead,
--    holds_paid, holds_unpaid, now, {deadline, seats, deadline, seats, ...}}
--@include context
--@include holds
--@include waitlist
--@include settle
begin()
if is_loaded() then settle_due() end
local key = entry_key(ARGV[4])
local entry = redis.call('HMGET', key, 'status', 'count', 'category', 'hold_id')
if not entry[1] then return finish({}) end
local position, wanted_ahead = 0, 0
local deadlines = {}
if entry[1] == 'waiting' then
  local rank = redis.call('ZRANK', K_WAITLIST, ARGV[4])
  position = rank + 1
  if rank > 0 then
    for _, ahead in ipairs(redis.call('ZRANGE', K_WAITLIST, 0, rank - 1)) do
      wanted_ahead = wanted_ahead + tonumber(redis.call('HGET', entry_key(ahead), 'count') or '0')
    end
  end
  local due = redis.call('ZRANGE', K_DEADLINES, 0, tonumber(ARGV[5]) - 1, 'WITHSCORES')
  for i = 1, #due, 2 do
    local hold = redis.call('HMGET', hold_key(due[i]), 'seats', 'status')
    if hold[1] and hold[2] == 'active' then
      deadlines[#deadlines + 1] = due[i + 1]
      deadlines[#deadlines + 1] = #split_seats(hold[1])
    end
  end
end
local stats = redis.call('HMGET', K_STATS, 'holds_paid', 'holds_unpaid')
return finish({entry[1], entry[2], entry[3], position, entry[4] or '', wanted_ahead,
  stats[1] or '0', stats[2] or '0', NOW, deadlines})
