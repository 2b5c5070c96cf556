-- The gate in front of holds and waitlist joins: sales not open yet, or a release
-- queue that needs a pass. Needs context.lua and queue.lua.

-- nil when `customer` may go on, else the refusal to answer:
--   {-21, sale_opens_at}  sales open later (ms)
--   {-22}                 the queue is active and `token` is no unused, unexpired pass
--                         issued to this customer for this show (missing, forged, used,
--                         lapsed, another customer's; another show's is unknown here)
-- and, second, the ticket whose pass the caller uses once its hold or entry is made.
local function gate(customer, token)
  token = token or ''
  local opens = SALE_OPENS_AT
  if opens == 0 then return nil, nil end
  if NOW < opens then return {-21, opens}, nil end
  queue_settle('')
  if not queue_active() then return nil, nil end
  if token == '' then return {-22}, nil end
  local ticket_id = redis.call('HGET', q_key('passtokens'), token)
  if not ticket_id then return {-22}, nil end
  local t = redis.call('HMGET', ticket_key(ticket_id), 'status', 'customer', 'used', 'expires_at')
  if t[1] ~= 'admitted' or t[3] == '1' or t[2] ~= customer or tonumber(t[4]) <= NOW then
    return {-22}, nil
  end
  return nil, ticket_id
end

-- The pass of `ticket_id` did its work (a hold or an entry was made with it): it is used,
-- never valid again, and its place goes to the next in the queue.
local function use_pass(ticket_id)
  if not ticket_id then return end
  local key = ticket_key(ticket_id)
  local t = redis.call('HMGET', key, 'customer', 'token')
  redis.call('HSET', key, 'used', '1', 'used_at', NOW)
  redis.call('ZREM', q_key('passes'), ticket_id)
  redis.call('HDEL', q_key('passtokens'), t[2])
  if redis.call('HGET', q_key('queuers'), t[1]) == ticket_id then redis.call('HDEL', q_key('queuers'), t[1]) end
  tell_ticket(ticket_id)
  admit()
end
