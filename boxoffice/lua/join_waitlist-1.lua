-- join_waitlist: queues a customer for `count` seats (of one category or any),
-- numbered by a per-show arrival counter, only while the request has a chance
-- (enough unsold seats: held or free). Seats already free for it are granted at once.
-- Input:
--   KEYS[1], ARGV[1..3]      see includes/context.lua
--   ARGV[4]  entry id (unguessable, made by the engine; starts with "W")
--   ARGV[5]  customer
--   ARGV[6]  count
--   ARGV[7]  category, "" for any
--   ARGV[8]  most seats one customer may hold in this show
--   ARGV[9]  the abuse limits: "<customer limit>|<address limit>|<address>" (ratelimit.lua)
--   ARGV[10] queue pass token ("" none; includes/gate.lua)
-- Output:
--   {1, position, status}   queued (status "waiting", position 1 is served next)
--                           or granted at once (status "granted", position 0)
--   {-1}                    show not loaded
--   {-3, already_held}      customer limit
--   {-20, retry_after_s, scope}  over an abuse limit ("address" or "customer")
--   {-9}                    this customer already waits for this show
--   {-10}                   no chance: not enough unsold seats
--   {-11, reason}           the show takes no one: "closed" or "started"
--   {-21, sale_opens_at} / {-22}   sales not open / a pass needed (includes/gate.lua)
-- Idempotent: a second run with the same entry id answers {1, position, status}
-- of the entry the first run made, as it is now.
--@include context
--@include holds
--@include waitlist
--@include settle
--@include queue
--@include gate
--@include ratelimit
if not LOADED then return -1 end
begin()
settle_due()
local entry_id, customer, category = ARGV[4], ARGV[5], ARGV[7]
local limited = over_rate_limit(ARGV[9], customer)
if limited then return finish(limited) end
local count = tonumber(ARGV[6])
local made = redis.call('HGET', entry_key(entry_id), 'status')
if made then
  local rank = made == 'waiting' and redis.call('ZRANK', K_WAITLIST, entry_id)
  return finish({1, rank and (rank + 1) or 0, made})
end
local stopped = not_selling()
if stopped then
  return finish({-11, stopped})
end
local refused, pass_ticket = gate(customer, ARGV[10])
if refused then return finish(refused) end
if redis.call('HEXISTS', K_WAITERS, customer) == 1 then
  return finish({-9})
end
local held = tonumber(redis.call('HGET', K_CUSTOMERS, customer) or '0')
if held + count > tonumber(ARGV[8]) then
  return finish({-3, held})
end
local unsold
if category == '' then unsold = unsold_total() else unsold = unsold_by_category()[category] or 0 end
if unsold < count then
  return finish({-10})
end
add_entry(entry_id, customer, count, category)
use_pass(pass_ticket)
grant_waiters()
local rank = redis.call('ZRANK', K_WAITLIST, entry_id)
local status = redis.call('HGET', entry_key(entry_id), 'status')
return finish({1, rank and (rank + 1) or 0, status})
