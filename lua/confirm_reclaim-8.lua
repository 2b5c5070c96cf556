-- confirm_reclaim: the reconciler found a payment taken for a confirm that was
-- cut off. Re-pins the hold when it is still that confirm's, or takes the
-- seats back atomically when they are all free again; otherwise the payment
-- must be refunded.
-- Input:
--   KEYS[1..8], ARGV[1..3]   see includes/context.lua
--   ARGV[4]  hold id
--   ARGV[5]  fence of the cut-off confirm
--   ARGV[6]  pin time in ms
--   ARGV[7]  customer
--   ARGV[8..] seats of the hold
-- Output:
--   {1, fence}  pinned for the reconciler under a new fence
--   {0}         seats went elsewhere: refund
--   {-1}        show not loaded
--@include context
--@include holds
--@include waitlist
--@include settle
if not is_loaded() then return -1 end
begin()
settle_due()
local key = hold_key(ARGV[4])
local hold = redis.call('HMGET', key, 'status', 'fence')
local seats = {}
for i = 8, #ARGV do seats[#seats + 1] = ARGV[i] end
local mine = 'h:' .. ARGV[4]
local ours = hold[1] == 'confirming' and hold[2] == ARGV[5]
if not ours then
  if hold[1] == 'active' or hold[1] == 'confirming' or hold[1] == 'confirmed' then
    return finish({0})
  end
  for _, seat in ipairs(seats) do
    local value = redis.call('HGET', K_SEATS, seat)
    local category = seat_category(seat)
    if category == nil or (value and value ~= mine) or (not value and reserved_for_queue(category)) then
      return finish({0})
    end
  end
  redis.call('DEL', key)
  create_hold(ARGV[4], ARGV[7], seats, 'reclaimed')
end
local fence = redis.call('HINCRBY', K_META, 'fence', 1)
local pinned_until = NOW + tonumber(ARGV[6])
redis.call('HSET', key, 'status', 'confirming', 'fence', fence, 'pinned_until', pinned_until)
redis.call('ZADD', K_DEADLINES, pinned_until, ARGV[4])
return finish({1, fence})
