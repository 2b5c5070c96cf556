-- eta_holds: the active holds that may give seats back to the queue, earliest
-- deadline first, each with how many seats of each category it holds. Confirming
-- holds are left out: they are being paid. One read serves every waiter of the
-- show for a moment (engine/waitlist.py caches it).
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  how many holds to look at, at most
-- Output:
--   -1 when the show is not loaded, else
--   {now, deadline, "category=n,category=n", deadline, "...", ...}
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
begin()
settle_due()
local out = {NOW}
local due = redis.call('ZRANGE', K_DEADLINES, 0, tonumber(ARGV[4]) - 1, 'WITHSCORES')
for i = 1, #due, 2 do
  local hold = redis.call('HMGET', hold_key(due[i]), 'seats', 'status')
  if hold[1] and hold[2] == 'active' then
    local counts, order = {}, {}
    for _, seat in ipairs(split_seats(hold[1])) do
      local category = seat_category(seat) or ''
      if not counts[category] then order[#order + 1] = category end
      counts[category] = (counts[category] or 0) + 1
    end
    local parts = {}
    for _, category in ipairs(order) do parts[#parts + 1] = category .. '=' .. counts[category] end
    out[#out + 1] = due[i + 1]
    out[#out + 1] = table.concat(parts, ',')
  end
end
return finish(out)
