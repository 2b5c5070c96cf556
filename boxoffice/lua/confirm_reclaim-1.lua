-- confirm_reclaim: a payment was taken but its confirm lost the pin (it lapsed,
-- or the process died). Pins the hold again under a new fence when it is still
-- the customer's: active, or confirming under that payment's fence or a lapsed
-- pin. When it ended (expired, or lost with a wiped Redis) and every seat is
-- free again (and no waiter could use it), takes the seats back atomically as
-- the same hold. Otherwise the seats went elsewhere and the payment must be
-- refunded. A released hold is never taken back: its owner gave it up.
-- A hold taken back gets no hold time of its own (only the pin) and counts
-- against the customer's limit like any hold.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  hold id
--   ARGV[5]  fence the payment was taken under
--   ARGV[6]  pin time in ms
--   ARGV[7]  customer
--   ARGV[8]  attempt id (unguessable, one per reclaim attempt, made by the engine)
--   ARGV[9]  most seats one customer may hold in this show
--   ARGV[10..] seats of the hold
-- Output:
--   {1, fence}     pinned under a new fence: commit the sale with it (by this run, or
--                  by an earlier run of the same attempt: idempotent)
--   {0, status}    not the customer's any more (status: the hold's, "" if unknown)
--   {-1}           show not loaded
--   {-11, reason}  the show sells nothing: "closed" or "started"
--@include context
--@include holds
--@include waitlist
--@include settle
if not LOADED then return -1 end
begin()
settle_due()
local key = hold_key(ARGV[4])
local hold = redis.call('HMGET', key, 'status', 'fence', 'pinned_until', 'expires_at', 'attempt')
local status = hold[1] or ''
if status == 'confirming' and hold[5] == ARGV[8] then return finish({1, hold[2]}) end
local stopped = not_selling()
if stopped then return finish({-11, stopped}) end
local pinnable = status == 'active' or (status == 'confirming' and
  (hold[2] == ARGV[5] or tonumber(hold[3]) <= NOW))
if not pinnable then
  if status ~= 'expired' and status ~= '' then return finish({0, status}) end
  local seats = {}
  for i = 10, #ARGV do seats[#seats + 1] = ARGV[i] end
  local held = tonumber(redis.call('HGET', K_CUSTOMERS, ARGV[7]) or '0')
  if held + #seats > tonumber(ARGV[9]) then return finish({0, status}) end
  local positions = seat_positions(seats)
  local chars = seat_chars(positions)
  for i, seat in ipairs(seats) do
    local category = seat_category(seat)
    if category == nil or chars[i] ~= '0' or reserved_for_queue(category) then
      return finish({0, status})
    end
  end
  redis.call('DEL', key)
  create_hold(ARGV[4], ARGV[7], seats, 'reclaimed', 0, positions)
  hold[4] = redis.call('HGET', key, 'expires_at')
end
local fence = pin_hold(ARGV[4], tonumber(hold[4]), tonumber(ARGV[6]), ARGV[8])
return finish({1, fence})
