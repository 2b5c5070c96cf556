-- hold_seats: takes every requested seat for one customer, or none of them.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  hold id (unguessable, made by the engine)
--   ARGV[5]  customer
--   ARGV[6]  most seats one customer may hold in this show
--   ARGV[7]  the abuse limits: "<customer limit>|<address limit>|<address>" (ratelimit.lua)
--   ARGV[8]  queue pass token ("" none; includes/gate.lua)
--   ARGV[9..] seat ids (their form, number and uniqueness checked by api/validation.py;
--             this script checks only what guards the show's state below)
-- Output:
--   {1, expires_at, now}                    held
--   {2, expires_at, now, hold_id}           an earlier run made this hold (a retry with the
--                                           same id): that hold
--   {-1}                                    show not loaded
--   {-2, waitlist_length, possible, seat..} some seats not free: nothing held
--   {-3, already_held}                      customer limit (checked after the seats: a hold
--                                           refused for its seats says so first)
--   {-5, seat}                              a seat not in this hall, or named twice, or
--                                           no seat at all ("") (each would corrupt the
--                                           show's counts)
--   {-20, retry_after_s, scope}             over an abuse limit ("address" or "customer")
--   {-12, seat}                             the show keeps no stranded seats (load_show's
--                                           flag) and the hold would leave `seat` alone
--                                           between taken seats, an aisle or a wall
--   {-11, reason}                           the show sells nothing: "closed" or "started"
--   {-21, sale_opens_at} / {-22}            sales not open / a pass needed (includes/gate.lua)
-- Idempotent: a second run with the same hold id answers {2, ...} with the hold the
-- first run made, whatever became of it since.
--@include context
--@include holds
--@include waitlist
--@include settle
--@include queue
--@include gate
--@include ratelimit
--@include holdcheck
if not LOADED then return -1 end
begin()
settle_due()
local customer = ARGV[5]
local refused, pass_ticket = refused_before_seats(ARGV[4], customer, ARGV[7], ARGV[8])
if refused then return finish(refused) end
local seats = {unpack(ARGV, 9)}
if #seats == 0 then return finish({-5, ''}) end  -- a hold of nothing would break the counts

-- Each seat's position in the status map; false: not in this hall (the seat index numbers
-- exactly the layout's seats: load_show-1.lua, index_seats-1.lua).
local positions = seat_positions(seats)
for i = 1, #seats do  -- (numeric loops here: an ipairs step is a call)
  local seat = seats[i]
  if not positions[i] then return finish({-5, seat}) end
  for j = 1, i - 1 do  -- named twice (a hold has a few seats: no table for this)
    if seats[j] == seat then return finish({-5, seat}) end
  end
end
-- Free, held or booked: the status map says (statusmap.lua); the seats hash is not read.
-- A free seat a waiter could use is the queue's, not a newcomer's (waiters first,
-- docs/DESIGN.md): the seats' categories (layout) are read only while someone waits.
local unavailable
if not all_free(positions) or WAITING > 0 then
  local chars = seat_chars(positions)
  local plan_entries = WAITING > 0 and redis.call('HMGET', K_LAYOUT, unpack(seats))
  for i = 1, #seats do
    local seat = seats[i]
    if chars[i] ~= '0' or (plan_entries and reserved_for_queue(category_of(plan_entries[i]))) then
      unavailable = appended(unavailable, seat)
    end
  end
end
if unavailable then
  local free, held = seat_counts()
  local possible = (free + held) >= #seats and 1 or 0
  local out = {-2, WAITING, possible}
  for _, seat in ipairs(unavailable) do out[#out + 1] = seat end
  return finish(out)
end

if NO_STRANDED then  -- read with the meta hash (context.lua, start_call)
  local stranded = stranded_by(seats)
  if stranded then return finish({-12, stranded}) end
end

-- The customer limit last: it counts the seats (waitlist.lua, customer_takes).
local over_limit = customer_takes(customer, #seats, tonumber(ARGV[6]))
if over_limit then return finish(over_limit) end
local expires = create_hold(ARGV[4], customer, seats, nil, nil, positions, true)
use_pass(pass_ticket)
return finish({1, expires, NOW})
