-- seat_map: the live state of every taken seat of a show, in one round trip.
-- Input:
--   KEYS[1..8], ARGV[1..3]   see includes/context.lua
-- Output:
--   -1 when the show is not loaded, else
--   {taken, categories}: taken is a flat list seat, "h"|"b"; categories is the
--   flat list of price categories the queue waits for ("*": any) — free seats of
--   those are kept for waiters and shown as held.
--@include context
--@include holds
--@include waitlist
--@include settle
if not is_loaded() then return -1 end
begin()
settle_due()
local raw = redis.call('HGETALL', K_SEATS)
local taken = {}
for i = 1, #raw, 2 do
  taken[#taken + 1] = raw[i]
  taken[#taken + 1] = string.sub(raw[i + 1], 1, 1)
end
local categories = {}
if waitlist_length() > 0 then
  local meta = redis.call('HGETALL', K_META)
  for i = 1, #meta, 2 do
    if string.sub(meta[i], 1, 3) == 'wc:' and tonumber(meta[i + 1]) > 0 then
      categories[#categories + 1] = string.sub(meta[i], 4)
    end
  end
end
return finish({taken, categories})
