-- hold_best: finds and holds the best free seats for one customer in one step
-- ("best available", includes/best.lua), all or none.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  hold id (unguessable, made by the engine)
--   ARGV[5]  customer
--   ARGV[6]  most seats one customer may hold in this show
--   ARGV[7]  how many seats (1 to the most per hold, checked by the engine)
--   ARGV[8]  price category, "" for any (a block never mixes categories)
--   ARGV[9]  seat kind, "" for standard seats only (wheelchair and companion spaces
--            are offered only to a request that names their kind)
--   ARGV[10] "1": side by side in one row; "0": the best seats by rank, anywhere
--   ARGV[11] the abuse limits: "<customer limit>|<address limit>|<address>" (ratelimit.lua)
--   ARGV[12] queue pass token ("" none; includes/gate.lua)
-- Output:
--   {1, expires_at, now, seat..}            held: the chosen seats
--   {2, expires_at, now, hold_id}           an earlier run made this hold (a retry with the
--                                           same id): that hold
--   {-1}                                    show not loaded
--   {-2, waitlist_length, possible}         no choice fits: nothing held
--   {-3, already_held}                      customer limit (checked once the seats are chosen)
--   {-20, retry_after_s, scope}             over an abuse limit ("address" or "customer")
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
local refused, pass_ticket = refused_before_seats(ARGV[4], customer, ARGV[11], ARGV[12])
if refused then return finish(refused) end
local count = tonumber(ARGV[7])

local category, kind = ARGV[8], ARGV[9] == '' and 'standard' or ARGV[9]
-- A free seat a waiter could use is the queue's, not a newcomer's (waiters first,
-- docs/DESIGN.md): asked once per category.
local queue_keeps = {}
local function accepts(plan, seat)
  local seat_category = plan.cat[seat]
  if (category ~= '' and seat_category ~= category) or plan.kind[seat] ~= kind then return false end
  local kept = queue_keeps[seat_category]
  if kept == nil then
    kept = reserved_for_queue(seat_category)
    queue_keeps[seat_category] = kept
  end
  return not kept
end

local free, held = seat_counts()
local seats = free >= count and choose_seats(count, ARGV[10] == '1', accepts, free)
if not seats then
  local possible = (free + held) >= count and 1 or 0
  return finish({-2, WAITING, possible})
end
-- The customer limit last: it counts the seats (waitlist.lua, customer_takes).
local over_limit = customer_takes(customer, count, tonumber(ARGV[6]))
if over_limit then return finish(over_limit) end
local expires = create_hold(ARGV[4], customer, seats, nil, nil, nil, true)
use_pass(pass_ticket)
local out = {1, expires, NOW}
for _, seat in ipairs(seats) do out[#out + 1] = seat end
return finish(out)
