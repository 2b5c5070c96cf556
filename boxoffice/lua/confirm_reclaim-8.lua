-- confirm_reclaim: a payment was taken but its confirm lost the pin (it lapsed,
-- or the process died). Pins the hold again under a new fence when it is still
-- the customer's: active, or confirming under that payment's fence or a lapsed
-- pin. When it ended (expired, or lost with a wiped Redis) and every seat is
-- free again (and no waiter could use it), takes the seats back atomically as
-- the same hold. Otherwise the seats went elsewhere and the payment must be
-- refunded. A released hold is never taken back: its owner gave it up.
-- Input:
--   KEYS[1..8], ARGV[1..3]   see includes/context.lua
--   ARGV[4]  hold id
--   ARGV[5]  fence the payment was taken under
--   ARGV[6]  pin time in ms
--   ARGV[7]  customer
--   ARGV[8..] seats of the hold
-- Output:
--   {1, fence}     pinned under a new fence: commit the sale with it
--   {0, status}    not the customer's any more (status: the hold's, "" if unknown)
--   {-1}           show not loaded
--@include context
--@include holds
--@include waitlist
--@include settle
if not is_loaded() then return -1 end
begin()
settle_due()
local key = hold_key(ARGV[4])
local hold = redis.call('HMGET', key, 'status', 'fence', 'pinned_until', 'expires_at')
local status = hold[1] or ''
local pinnable = status == 'active' or (status == 'confirming' and
  (hold[2] == ARGV[5] or tonumber(hold[3]) <= NOW))
if not pinnable then
  if status ~= 'expired' and status ~= '' then return finish({0, status}) end
  local seats = {}
  for i = 8, #ARGV do seats[#seats + 1] = ARGV[i] end
  for _, seat in ipairs(seats) do
    local category = seat_category(seat)
    if category == nil or redis.call('HEXISTS', K_SEATS, seat) == 1 or reserved_for_queue(category) then
      return finish({0, status})
    end
  end
  redis.call('DEL', key)
  create_hold(ARGV[4], ARGV[7], seats, 'reclaimed')
  hold[4] = redis.call('HGET', key, 'expires_at')
end
local fence = redis.call('HINCRBY', K_META, 'fence', '1')
local pinned_until = NOW + tonumber(ARGV[6])
redis.call('HSET', key, 'status', 'confirming', 'fence', fence, 'pinned_until', pinned_until)
redis.call('ZADD', K_DEADLINES, math.max(pinned_until, tonumber(hold[4])), ARGV[4])
FIRST_DEADLINE_KNOWN = false
return finish({1, fence})
